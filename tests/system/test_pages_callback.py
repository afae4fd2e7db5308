"""回电: the lead whose post holds a case sees the resident's number (with a tap-to-call link) on a
page intake serves, linked from dispatch's case page; nobody else does — another lead of the
township, the township's staff, a lead of another township, a stranger — and each showing is
recorded on the report without the number. The API gives the same to a lead's app."""
from __future__ import annotations

from tests.support.dispatch import TOWNSHIP, case, posts, submit
from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.signin import csrf, sign_in_page
from tests.system.test_pages_case_photos import lead_web, report_of  # noqa: F401 (fixture)

PHONE = "13800000001"   # tests.support.dispatch.submit's reporter


def test_the_holding_lead_calls_the_resident_back(system, lead_web):
    case_id = submit(system, lead_web, reporter_name="毛大爷")
    page = lead_web.get(f"/lead/cases/{case_id}").get_data(as_text=True)
    report = report_of(system, case_id)
    link = f"/resident/handling/{report['_id']}/contact?next=/lead/cases/{case_id}"
    assert f'href="{link}"' in page and PHONE not in page   # dispatch's page never holds the number
    shown = lead_web.get(link)
    html = shown.get_data(as_text=True)
    assert shown.status_code == 200 and f'href="tel:{PHONE}"' in html and "毛大爷" in html
    assert shown.headers["Cache-Control"] == "no-store" and shown.headers["Referrer-Policy"] == "no-referrer"
    assert f'href="/lead/cases/{case_id}"' in html
    views = report_of(system, case_id)["contact_views"]
    assert len(views) == 1 and views[0]["unit_id"] == posts(system)["neighbourhood"]["_id"]
    assert PHONE not in str(views)
    # after 接单 and 办结 the lead can still call back (回访)
    assert lead_web.post(f"/lead/cases/{case_id}/accept", data={"csrf_token": csrf(lead_web)}).status_code == 303
    assert lead_web.post(f"/lead/cases/{case_id}/resolve",
                         data={"csrf_token": csrf(lead_web), "note": "已更换灯泡"}).status_code == 303
    assert system.drain()
    assert f'href="{link}"' in lead_web.get(f"/lead/cases/{case_id}").get_data(as_text=True)
    assert lead_web.get(link).status_code == 200


def test_the_api_gives_the_number_to_the_holding_leads_app_only(system, web, demo):
    assert system.drain(15)
    case_id = submit(system, web)
    report_id = case(system, case_id)["report_id"]
    holder = posts(system)["neighbourhood"]
    mine = web.get(f"/api/v1/reports/{report_id}/contact", headers=token(system, "lead", unit_id=holder["_id"]))
    assert mine.status_code == 200 and mine.json["phone"] == PHONE and mine.headers["Cache-Control"] == "no-store"
    other_post = web.get(f"/api/v1/reports/{report_id}/contact", headers=token(system, "lead", unit_id="u-other"))
    assert other_post.status_code == 403 and PHONE not in other_post.get_data(as_text=True)
    other_town = web.get(f"/api/v1/reports/{report_id}/contact",
                         headers=token(system, "lead", townships=("430382101",), unit_id=holder["_id"]))
    assert other_town.status_code == 404
    for role in ("staff", "client"):
        got = web.get(f"/api/v1/reports/{report_id}/contact", headers=token(system, role))
        assert got.status_code in (403, 404) and PHONE not in got.get_data(as_text=True), role
    assert web.get(f"/api/v1/reports/{report_id}/contact").status_code == 401


def test_nobody_else_gets_the_page(system, web, demo):
    assert system.drain(15)
    case_id = submit(system, web)
    report_id = case(system, case_id)["report_id"]
    link = f"/resident/handling/{report_id}/contact?next=/lead/cases/{case_id}"
    stranger = web.get(link)
    assert stranger.status_code == 303 and stranger.headers["Location"].startswith("/signin?next=/lead/cases/")
    made = web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "李娟", "phone": "13700000002", "township": TOWNSHIP})
    assert made.status_code == 201
    staff = sign_in_page(web, system, "13700000002", "/staff/")
    refused = staff.get(link)
    assert refused.status_code == 403 and PHONE not in refused.get_data(as_text=True)
    assert "只给正在办理该诉求的三长" in refused.get_data(as_text=True)
    assert "contact_views" not in report_of(system, case_id)
    off_site = staff.get(f"/resident/handling/{report_id}/contact?next=https://evil.example/")
    assert 'href="https://evil.example/' not in off_site.get_data(as_text=True)
