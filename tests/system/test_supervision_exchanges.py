"""积分超市 over HTTP (embedded runtime): staff stock the catalogue, a lead who earned points by handling
a real case on time spends them, staff record and reverse exchanges; the board and the XLSX export show
them; every input is validated with the field named; a township never sees another's shop."""
from __future__ import annotations

import io

import openpyxl
import pytest

from tests.support.dispatch import TOWNSHIP, holder, posts, submit
from tests.support.runtime import token

OTHER = "430382101"


def staff(system, township=TOWNSHIP):
    return token(system, "staff", townships=(township,), name="镇综治中心")


@pytest.fixture
def earned(system, web, demo):
    """The 邻长 of 第1邻 accepted and resolved a case on time: 1 + 3 points in the ledger."""
    case_id = submit(system, web)
    nb = posts(system)["neighbourhood"]
    lead = holder(system, nb)
    assert web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=lead).status_code == 200
    assert web.post(f"/api/v1/cases/{case_id}/resolve", json={"note": "已修好"}, headers=lead).status_code == 200
    assert system.drain()
    return nb, lead


def add_item(web, system, **body):
    resp = web.post(f"/api/v1/townships/{TOWNSHIP}/rewards", json={"name": "肥皂", "price": 3, "stock": 2, **body},
                    headers=staff(system))
    assert resp.status_code == 201, resp.json
    return resp.json


def test_a_lead_spends_earned_points_and_staff_reverse_it(system, web, earned):
    nb, lead = earned
    item = add_item(web, system)
    assert web.get("/api/v1/my/points", headers=lead).json["balance"] == 4
    assert [i["name"] for i in web.get("/api/v1/my/rewards", headers=lead).json] == ["肥皂"]
    body = {"item_id": item["id"], "key": "ex-lead-0001"}
    done = web.post("/api/v1/my/exchanges", json=body, headers=lead)
    assert done.status_code == 201 and done.json["points"] == 3 and done.json["lead_name"] == nb["lead"]["name"]
    again = web.post("/api/v1/my/exchanges", json=body, headers=lead)          # a resend: the same exchange
    assert again.status_code == 201 and again.json["id"] == done.json["id"]
    poor = web.post("/api/v1/my/exchanges", json={"item_id": item["id"], "key": "ex-lead-0002"}, headers=lead)
    assert poor.status_code == 409 and poor.json["message"] == "积分不足：余额 1，需要 3"
    mine = web.get("/api/v1/my/points", headers=lead).json
    assert (mine["earned"], mine["spent"], mine["balance"]) == (4, 3, 1) and len(mine["exchanges"]) == 1
    ledger = web.get("/api/v1/my/ledger", headers=lead).json
    assert ledger["points"] == 1 and "exchange" in [e["rule"] for e in ledger["entries"]]

    board = web.get(f"/api/v1/townships/{TOWNSHIP}/board", headers=staff(system)).json
    assert board["exchanges"] == {"count": 1, "points": 3, "items": 1}
    export = web.get(f"/api/v1/townships/{TOWNSHIP}/figures/export", headers=staff(system))
    sheet = openpyxl.load_workbook(io.BytesIO(export.data))["积分兑换"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("兑换时间", "三长", "岗位", "商品") and rows[1][1:6] == (nb["lead"]["name"], nb["name"], "肥皂", 1, 3)

    url = f"/api/v1/townships/{TOWNSHIP}/exchanges/{done.json['id']}/reverse"
    assert web.post(url, json={}, headers=staff(system)).json["errors"]["json"].keys() == {"reason"}
    undone = web.post(url, json={"reason": "商品有质量问题，已退回"}, headers=staff(system))
    assert undone.status_code == 200 and undone.json["status"] == "reversed"
    assert web.post(url, json={"reason": "再撤一次"}, headers=staff(system)).status_code == 409
    assert web.get("/api/v1/my/points", headers=lead).json["balance"] == 4
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/rewards", headers=staff(system)).json[0]["stock"] == 2
    seen_by_staff = web.get(f"/api/v1/townships/{TOWNSHIP}/leads/{nb['_id']}/points", headers=staff(system)).json
    assert seen_by_staff["balance"] == 4 and [e["status"] for e in seen_by_staff["exchanges"]] == ["reversed"]


def test_staff_record_an_exchange_for_a_lead_and_stock_runs_out(system, web, earned):
    nb, _ = earned
    item = add_item(web, system, price=1, stock=1)
    url = f"/api/v1/townships/{TOWNSHIP}/exchanges"
    body = {"unit_id": nb["_id"], "item_id": item["id"], "key": "ex-staff-0001", "note": "在村部现场兑换"}
    done = web.post(url, json=body, headers=staff(system))
    assert done.status_code == 201 and done.json["by"] == "镇综治中心"
    empty = web.post(url, json={**body, "key": "ex-staff-0002"}, headers=staff(system))
    assert empty.status_code == 409 and "库存不足" in empty.json["message"]
    listed = web.get(url, query_string={"unit_id": nb["_id"]}, headers=staff(system)).json
    assert [e["key"] for e in listed] == ["ex-staff-0001"]
    off = web.patch(f"/api/v1/townships/{TOWNSHIP}/rewards/{item['id']}", json={"active": False, "stock": 5},
                    headers=staff(system))
    assert off.status_code == 200 and off.json["active"] is False
    gone = web.post(url, json={**body, "key": "ex-staff-0003"}, headers=staff(system))
    assert gone.status_code == 409 and "下架" in gone.json["message"]


@pytest.mark.parametrize("path,body,field", [
    ("rewards", {"name": "肥皂", "price": 0, "stock": 1}, "price"),
    ("rewards", {"name": "  ", "price": 3, "stock": 1}, "name"),
    ("rewards", {"name": "肥皂", "price": 3, "stock": -1}, "stock"),
    ("rewards", {"name": "肥皂", "price": 3}, "stock"),
    ("rewards", {"name": "肥皂", "price": 3, "stock": 1, "owner": "x"}, "owner"),
    ("exchanges", {"item_id": "x", "key": "ex-0000001"}, "unit_id"),
    ("exchanges", {"unit_id": "x", "item_id": "x", "key": "short"}, "key"),
    ("exchanges", {"unit_id": "x", "item_id": "x", "key": "ex-0000001", "quantity": 0}, "quantity"),
    ("exchanges", {"unit_id": "no-such-post", "item_id": "x", "key": "ex-0000001"}, "unit_id"),
])
def test_bad_input_names_the_field(system, web, demo, path, body, field):
    resp = web.post(f"/api/v1/townships/{TOWNSHIP}/{path}", json=body, headers=staff(system))
    assert resp.status_code == 422 and field in resp.json["errors"]["json"], resp.json


def test_a_township_never_sees_another_townships_shop(system, web, earned):
    nb, lead = earned
    item = add_item(web, system)
    outsider = staff(system, OTHER)
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/rewards", headers=outsider).status_code == 404
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/exchanges", headers=outsider).status_code == 404
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/leads/{nb['_id']}/points", headers=outsider).status_code == 404
    assert web.get(f"/api/v1/townships/{OTHER}/leads/{nb['_id']}/points", headers=outsider).status_code == 404
    # Its own township's URL with this township's item or post: not found, nothing spent.
    own = f"/api/v1/townships/{OTHER}"
    stolen = web.post(f"{own}/exchanges", json={"unit_id": nb["_id"], "item_id": item["id"], "key": "ex-steal-01"},
                      headers=outsider)
    assert stolen.status_code == 422 and "unit_id" in stolen.json["errors"]["json"]
    assert web.patch(f"{own}/rewards/{item['id']}", json={"stock": 99}, headers=outsider).status_code == 404
    assert web.get("/api/v1/my/points", headers=lead).json["spent"] == 0
    # A lead cannot manage the catalogue nor record for others.
    assert web.post(f"/api/v1/townships/{TOWNSHIP}/rewards", json={}, headers=lead).status_code == 403
    assert web.get("/api/v1/my/points", headers=staff(system)).status_code == 403
