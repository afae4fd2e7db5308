"""Files on the department desk, over HTTP (no browser): 配合意见, 销号 and 退单 take photos and PDFs;
a wrong type or size comes back next to the files field with the text kept and nothing stored; a
retried upload lands once; the files' addresses ride in case.signed_off, department.part_submitted
and case.returned; the township staff's case page links them (the co-handling departments' too); and each file opens only for the
case's departments and its township's staff (another department, another township, a lead, a
resident: 404)."""
from __future__ import annotations

import io

import pytest

from shared.web import create_app
from tests.support.escalation import NEIGHBOUR, TOWNSHIP, dept_id, record_published, referred_case, setup_city
from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.signin import csrf, sign_in_page

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x11" * 2000
PNG = b"\x89PNG\r\n\x1a\n" + b"\x22" * 1500
PDF = b"%PDF-1.7\n" + b"\x33" * 3000
CLERKS = {"zjj": "13700000031", "dx": "13700000032"}
STAFF_PHONE = "13700000039"


@pytest.fixture
def bus(system):
    """Every event the relay publishes, as consumers load them."""
    return record_published(system)


@pytest.fixture
def city(system, web, demo):
    depts = setup_city(web)
    for short, phone in CLERKS.items():
        assert web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
            "kind": "department", "name": f"{short}经办人", "phone": phone, "department_id": dept_id(short)}).status_code == 201
    assert web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "李娟", "phone": STAFF_PHONE, "township": TOWNSHIP}).status_code == 201
    assert system.drain(15)
    return depts


def signed_in(system, phone: str, address: str):
    """A browser of its own (test client) signed in through the pages: the session cookie."""
    return sign_in_page(create_app(system).test_client(), system, phone, "/", address)


def post(client, case_id: str, action: str, files=(), **fields):
    data = {"csrf_token": csrf(client), **fields, "files": [(io.BytesIO(d), name) for d, name in files]}
    return client.post(f"/dept/cases/{case_id}/{action}", data=data, content_type="multipart/form-data")


def blobs(system) -> int:
    files = system.service("escalation").api["service"].files.blobs
    return files.store.connection().execute(f"SELECT COUNT(*) FROM {files.table}").fetchone()[0]


def test_files_with_the_co_opinion_and_the_sign_off_reach_the_township(system, web, demo, city, bus):
    case_id = referred_case(system, web, demo)
    zjj, dx = signed_in(system, CLERKS["zjj"], "10.0.0.31"), signed_in(system, CLERKS["dx"], "10.0.0.32")
    for client in (zjj, dx):
        assert post(client, case_id, "accept").status_code == 303
    for action, body in (("accept", {}), ("part", {"note": "已上门核实低保情况"})):
        assert web.post(f"/api/v1/department/cases/{case_id}/{action}", json=body, headers=city["mzj"]).status_code == 200

    # 配合意见 with a PDF: its address rides in department.part_submitted.
    assert post(dx, case_id, "part", [(PDF, "检查记录.pdf")], note="已完成线路检查，无隐患").status_code == 303
    assert system.drain()
    part = [e for e in bus if e["type"] == "department.part_submitted" and e["payload"]["department_id"] == dept_id("dx")]
    (pdf_url,) = part[0]["payload"]["attachments"]
    assert pdf_url.startswith("/dept/files/")

    # A wrong type, then a file too large: the message next to the files field, the text kept, nothing stored.
    stored = blobs(system)
    for files, message in (([(b"GIF89a not a photo", "a.jpg")], "只能上传照片（JPEG、PNG、WebP）或PDF文件"),
                           ([(JPEG + b"\x00" * (10 * 1024 * 1024), "big.jpg")], "每个附件不能超过10MB")):
        bad = post(zjj, case_id, "sign_off", files, resolution="已完成屋面防水维修")
        text = bad.get_data(as_text=True)
        assert bad.status_code == 422 and 'id="sign_off-files-error"' in text and message in text
        assert "已完成屋面防水维修</textarea>" in text
    too_many = post(zjj, case_id, "sign_off", [(JPEG + bytes([n]), f"{n}.jpg") for n in range(10)], resolution="已完成屋面防水维修")
    assert too_many.status_code == 422 and "每次最多上传9个附件" in too_many.get_data(as_text=True)
    assert blobs(system) == stored
    assert system.service("escalation").api["referrals"].get(case_id)["status"] != "signed_off"

    # 销号 with a photo chosen twice and a PNG: two files; a resend is refused and stores nothing more.
    done = post(zjj, case_id, "sign_off", [(JPEG, "a.jpg"), (JPEG, "a-again.jpg"), (PNG, "b.png")],
                resolution="已完成屋面防水维修，住户确认不再漏水")
    assert done.status_code == 303 and blobs(system) == stored + 2
    again = post(zjj, case_id, "sign_off", [(JPEG, "a.jpg"), (PNG, "b.png")], resolution="已完成屋面防水维修，住户确认不再漏水")
    assert again.status_code == 409 and blobs(system) == stored + 2
    assert system.drain()
    signed = [e for e in bus if e["type"] == "case.signed_off"]
    assert len(signed) == 1
    urls = signed[0]["payload"]["attachments"]
    assert len(urls) == 2 and all(u.startswith("/dept/files/") for u in urls)
    assert system.drain()

    # dispatch keeps them with the sign-off; the township staff's case page links them.
    kept = system.service("dispatch").api["cases"].get(case_id)
    assert kept["status"] == "resolved" and kept["signed_off"]["attachments"] == urls
    staff = signed_in(system, STAFF_PHONE, "10.0.0.39")
    page = staff.get(f"/staff/{TOWNSHIP}/cases/{case_id}").get_data(as_text=True)
    assert 'id="department-files"' in page and all(f'href="{u}"' in page for u in urls)
    # … and the co-handling department's opinion with its file, kept by dispatch when it came.
    parts = {p["department_id"]: p for p in kept["department_parts"]}
    assert parts.keys() == {dept_id("mzj"), dept_id("dx")} and parts[dept_id("mzj")]["attachments"] == []
    assert parts[dept_id("dx")]["attachments"] == [pdf_url] and parts[dept_id("dx")]["note"] == "已完成线路检查，无隐患"
    assert f'href="{pdf_url}"' in page and "配合意见" in page
    assert "配合部门意见：" in page and "已完成线路检查，无隐患" in page   # on the timeline, with the department
    desk_page = zjj.get(f"/dept/cases/{case_id}").get_data(as_text=True)
    assert all(f'href="{u}"' in desk_page for u in urls)

    # Who may open them: the case's departments (session or credential) and its township's staff.
    photo = staff.get(urls[0])
    assert photo.status_code == 200 and photo.data == JPEG and photo.headers["Content-Type"] == "image/jpeg"
    assert photo.headers["X-Content-Type-Options"] == "nosniff"
    assert zjj.get(urls[1]).data == PNG and dx.get(pdf_url).headers["Content-Type"] == "application/pdf"
    assert web.get(pdf_url, headers=city["mzj"]).status_code == 200
    assert web.get(urls[0], headers=token(system, "staff", townships=(TOWNSHIP,))).status_code == 200
    strangers = {"another department": city["jtj"], "another township's staff": token(system, "staff", townships=(NEIGHBOUR,)),
                 "a lead": token(system, "lead"), "the client app": token(system, "client"), "no credential": {}}
    for who, headers in strangers.items():
        for url in (*urls, pdf_url, "/dept/files/nothing-here"):
            assert create_app(system).test_client().get(url, headers=headers).status_code == 404, (who, url)


def test_a_return_may_bring_its_evidence_as_a_file(system, web, demo, city, bus):
    case_id = referred_case(system, web, demo)
    zjj = signed_in(system, CLERKS["zjj"], "10.0.0.31")
    missing = post(zjj, case_id, "return", reason="屋面属于开发商保修范围，不属本局职责")
    text = missing.get_data(as_text=True)
    assert missing.status_code == 422 and "请提供依据：链接或文件" in text and 'id="return-evidence-error"' in text
    assert "屋面属于开发商保修范围，不属本局职责</textarea>" in text
    done = post(zjj, case_id, "return", [(PDF, "权责清单.pdf")], reason="屋面属于开发商保修范围，不属本局职责")
    assert done.status_code == 303 and system.drain()
    (returned,) = [e for e in bus if e["type"] == "case.returned"]
    (url,) = returned["payload"]["evidence"]
    assert url.startswith("/dept/files/")
    assert system.service("dispatch").api["cases"].get(case_id)["department_returns"][-1]["evidence"] == [url]
    assert zjj.get(url).data == PDF
    assert web.get(url, headers=token(system, "staff", townships=(TOWNSHIP,))).status_code == 200
    assert web.get(url, headers=city["jtj"]).status_code == 404


def test_files_are_refused_where_an_action_takes_none_and_on_another_departments_case(system, web, demo, city):
    case_id = referred_case(system, web, demo)
    zjj = signed_in(system, CLERKS["zjj"], "10.0.0.31")
    # 签收 takes no files: a file sent with it is ignored, never stored.
    stored = blobs(system)
    assert post(zjj, case_id, "accept", [(JPEG, "a.jpg")]).status_code == 303 and blobs(system) == stored
    other = referred_case(system, web, demo, "road", "村口道路塌陷一个大坑", "13812345679")            # 交通运输局's, not 住建局's
    assert post(zjj, other, "sign_off", [(b"GIF89a", "x.gif")], resolution="已修好").status_code == 404
    assert blobs(system) == stored


def test_the_departments_api_uploads_files_then_names_them(system, web, demo, city, bus):
    case_id = referred_case(system, web, demo)
    other = referred_case(system, web, demo, "road", "村口道路塌陷一个大坑", "13812345679")

    def upload(headers, where, *files):
        return web.post(f"/api/v1/department/cases/{where}/files", headers=headers, content_type="multipart/form-data",
                        data={"files": [(io.BytesIO(d), n) for d, n in files]})

    assert upload(city["jtj"], case_id, (JPEG, "a.jpg")).status_code == 404           # not its case: the wall first
    bad = upload(city["zjj"], case_id, (b"GIF89a", "a.jpg"))
    assert bad.status_code == 422 and bad.json["errors"] == {"files": {"files": ["只能上传照片（JPEG、PNG、WebP）或PDF文件"]}}
    stored = blobs(system)
    first = upload(city["zjj"], case_id, (JPEG, "a.jpg"), (PDF, "b.pdf"))
    again = upload(city["zjj"], case_id, (JPEG, "renamed.jpg"))
    assert first.status_code == 201 and [i["content_type"] for i in first.json["items"]] == ["image/jpeg", "application/pdf"]
    assert again.json["items"][0]["url"] == first.json["items"][0]["url"] and blobs(system) == stored + 2
    urls = [i["url"] for i in first.json["items"]]
    elsewhere = upload(city["jtj"], other, (PNG, "c.png")).json["items"][0]["url"]

    for short in ("zjj", "dx", "mzj"):
        assert web.post(f"/api/v1/department/cases/{case_id}/accept", json={}, headers=city[short]).status_code == 200
    for short in ("dx", "mzj"):
        assert web.post(f"/api/v1/department/cases/{case_id}/part", json={"note": "已配合完成检查"},
                        headers=city[short]).status_code == 200
    foreign = web.post(f"/api/v1/department/cases/{case_id}/sign-off", headers=city["zjj"],
                       json={"resolution": "已完成屋面防水维修", "attachments": [elsewhere]})
    assert foreign.status_code == 422 and "attachments" in foreign.json["errors"]["json"]
    done = web.post(f"/api/v1/department/cases/{case_id}/sign-off", headers=city["zjj"],
                    json={"resolution": "已完成屋面防水维修", "attachments": [*urls, "https://zjj.example.gov.cn/r.pdf"]})
    assert done.status_code == 200, done.json
    assert system.drain()
    (signed,) = [e for e in bus if e["type"] == "case.signed_off"]
    assert signed["payload"]["attachments"] == [*urls, "https://zjj.example.gov.cn/r.pdf"]
    assert web.get(urls[1], headers=city["zjj"]).data == PDF
