"""A township goes live in an afternoon (issue 13's "done when", docs/going-live.md), over HTTP on the
embedded system: the operator opens the township and its administrator; the administrator signs in
with the SMS code, previews the office's own 台账 (title row, merged cells, numbers as numbers,
totals and notes rows, a hidden column) with its contacts sheet, commits it in one go; every post
has a reachable person or is listed as not; a 邻长 signs in with the code from the roster's phone
and sees the case a resident reported."""
from __future__ import annotations

import io

import openpyxl

from tests.support.ledgers import ledger
from tests.support.runtime import ADMIN_HEADERS
from tests.support.signin import Phone, bearer, sign_in

TOWNSHIP, ADMIN_PHONE = "430382200", "13900000001"
CONTACTS = [["韶山村", "毛建国", "值班", "13873300001", "", ""], ["", "刘晓东", "值班", "13873300009", "", "1"]]


def with_contacts(data: bytes, rows) -> bytes:
    """The office's ledger with a "村委会及镇干部" sheet added, as the going-live guide asks."""
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book.create_sheet("村委会及镇干部")
    sheet.append(["村(社区)", "姓名", "职务", "电话", "企业微信", "顺序"])
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(web, token: str, data: bytes, **query):
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return web.post(f"/api/v1/townships/{TOWNSHIP}/roster?{params}", headers=bearer(token),
                    data={"file": (io.BytesIO(data), "联户台账.xlsx")}, content_type="multipart/form-data")


def open_township(web) -> None:
    assert web.post("/api/v1/admin/townships", json={"code": TOWNSHIP, "name": "清溪镇"},
                    headers=ADMIN_HEADERS).status_code == 201
    made = web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "township_admin", "name": "谭主任", "phone": ADMIN_PHONE, "township": TOWNSHIP})
    assert made.status_code == 201, made.get_data(as_text=True)


def test_a_township_goes_live_from_its_own_spreadsheet_to_a_lead_signed_in(system, web):
    phone = Phone(system)
    open_township(web)
    admin = sign_in(web, system, phone, ADMIN_PHONE)
    assert admin["role"] == "staff" and admin["townships"] == [TOWNSHIP]

    # The 台账 as the office keeps it: 第2邻's lead has only a landline — listed, not refused.
    data = with_contacts(ledger(), CONTACTS)
    preview = upload(web, admin["token"], data, dry_run="true")
    assert preview.status_code == 200, preview.get_data(as_text=True)
    assert preview.json["summary"]["households_added"] == 5 and preview.json["summary"]["posts_added"] == 5
    assert "表头在第2行" in preview.json["notices"][0]["message"]
    assert sum("合计或备注行" in n["message"] for n in preview.json["notices"]) >= 2
    stored = system.service("dispatch").api["org"].units.find({"township": TOWNSHIP})
    assert [u["level"] for u in stored] == ["township"]   # the preview wrote nothing

    done = upload(web, admin["token"], data, base=preview.json["base"])
    assert done.status_code == 201 and done.json["changed"] is True and done.json["counts"]["contacts"] == 2
    assert done.json["counts"]["household"] == 5   # the totals and notes rows are not households
    assert [u["unit_name"] for u in done.json["unreachable"]] == []   # every lead here has a mobile
    reach = web.get(f"/api/v1/townships/{TOWNSHIP}/reachability", headers=bearer(admin["token"]))
    assert reach.status_code == 200 and reach.json["unreachable"] == []

    # A resident of 第1邻 reports; its 邻长 signs in with the roster's phone and sees the case.
    report = web.post("/api/v1/reports", headers=bearer(admin["token"]), json={
        "township": TOWNSHIP, "address": "韶山村一组12号", "category": "environment",
        "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": "13800000077", "channel": "phone"})
    assert report.status_code == 201, report.get_data(as_text=True)
    assert system.drain(15)
    lead = sign_in(web, system, phone, "13873100003")
    assert lead["role"] == "lead" and lead["name"] == "周桂香"
    mine = web.get("/api/v1/my/cases", headers=bearer(lead["token"]))
    assert [c["tracking_no"] for c in mine.json] == [report.json["tracking_no"]]
    assert mine.json[0]["status_text"] == "待接单"


def test_a_landline_only_lead_is_listed_as_unreachable_at_import(system, web):
    phone = Phone(system)
    open_township(web)
    admin = sign_in(web, system, phone, ADMIN_PHONE)
    blocks = [{"邻": "第1邻", "邻长": "周桂香", "邻长电话": "0731-55512345",
               "households": [("毛德生", "韶山村一组12号", 13800000001.0)]}]
    done = upload(web, admin["token"], ledger(blocks=blocks))   # no contacts sheet either
    assert done.status_code == 201, done.get_data(as_text=True)
    listed = {u["unit_name"]: u["reason"] for u in done.json["unreachable"]}
    assert "固定电话" in listed["第1邻"]
    assert listed["韶山村"] == "未登记联系人" and "清溪镇" in listed
