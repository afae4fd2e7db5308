"""The pages over HTTP (no browser): walls and refusals. A township not opened has no report page;
bad photos store nothing; a report's page opens only for the browser that made it or proved it (and
five wrong proofs lock it); a form without its CSRF value changes nothing; the workbenches ask for
a signed-in session; every page carries the strict Content-Security-Policy."""
from __future__ import annotations

import re

import pytest

from shared.runtime import SERVICES, Runtime
from shared.web import create_app
from tests.support.runtime import make_settings, token

TOWNSHIP = "430382100"
PHONE = "13973200001"


@pytest.fixture
def system(tmp_path, clock):
    runtime = Runtime(make_settings(tmp_path, pages_townships=f"{TOWNSHIP}=清溪镇"), SERVICES, clock=clock).start()
    yield runtime
    runtime.stop()


def nonce(web) -> str:
    page = web.get(f"/resident/{TOWNSHIP}/report").get_data(as_text=True)
    return re.search(r'name="submission" value="([0-9a-f]{32})"', page).group(1)


def report(web, **extra):
    data = {"category": "road", "description": "路面塌了一个坑，很危险", "address": "韶山村一组12号", "phone": PHONE,
            "submission": nonce(web), **extra}
    return web.post(f"/resident/{TOWNSHIP}/report", data=data, content_type="multipart/form-data")


def reports(system) -> int:
    return len(system.service("intake").api["reports"].collection.find({}, limit=100))


def test_only_opened_townships_take_reports(web, demo):
    assert web.get("/resident/").status_code == 303
    closed = web.get("/resident/430382101/report")
    assert closed.status_code == 404 and "暂未开通" in closed.get_data(as_text=True)
    page = web.get(f"/resident/{TOWNSHIP}/report")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert web.get("/resident/kit/kit.css").headers["X-Content-Type-Options"] == "nosniff"
    assert web.get("/resident/kit/secrets.txt").status_code == 404


def test_a_bad_photo_stores_nothing_and_keeps_the_text(system, web, demo):
    import io

    resp = report(web, photos=(io.BytesIO(b"GIF89a not a photo"), "x.gif"))
    text = resp.get_data(as_text=True)
    # Shown again as a page, not an error response: it holds the phone number the person typed.
    assert resp.status_code == 200 and "只能上传照片（JPEG、PNG或WebP格式）" in text and "路面塌了一个坑，很危险" in text
    assert f'value="{PHONE}"' in text
    assert reports(system) == 0


def test_the_same_form_sent_twice_makes_one_report(system, web, demo):
    data = {"category": "road", "description": "路面塌了一个坑，很危险", "address": "韶山村一组12号", "phone": PHONE,
            "submission": nonce(web)}
    first = web.post(f"/resident/{TOWNSHIP}/report", data=data)
    again = web.post(f"/resident/{TOWNSHIP}/report", data=data)
    assert first.headers["Location"] == again.headers["Location"] and reports(system) == 1


def test_a_reports_page_opens_only_with_its_cookie_or_the_proof(system, web, demo, app_client):
    made = report(web)
    where = made.headers["Location"]
    tracking = where.rsplit("/", 1)[1]
    assert web.get(where).status_code == 200
    stranger = app_client()
    assert stranger.get(where).status_code == 303                     # to the proof form
    for _ in range(5):
        wrong = stranger.post(f"/resident/{TOWNSHIP}/track", data={"tracking_no": tracking, "phone_last4": "9999"})
        assert wrong.status_code == 404 and "查询码或手机号后四位不对" in wrong.get_data(as_text=True)
    locked = stranger.post(f"/resident/{TOWNSHIP}/track", data={"tracking_no": tracking, "phone_last4": PHONE[-4:]})
    assert locked.status_code == 404                                  # five wrong tries lock it for an hour
    assert PHONE not in web.get(where).get_data(as_text=True)         # never the full number on the page


def test_a_form_without_its_csrf_value_changes_nothing(system, web, demo):
    created = web.post("/api/v1/reports", headers=token(system, "client"), json={
        "township": TOWNSHIP, "category": "social", "description": "低保怎么申请", "address": "韶山村一组12号",
        "reporter_phone": PHONE, "channel": "mini_program"}).json
    proved = web.post(f"/resident/{TOWNSHIP}/track", data={"tracking_no": created["tracking_no"], "phone_last4": PHONE[-4:]})
    assert proved.status_code == 303
    path = f"/resident/{TOWNSHIP}/track/{created['tracking_no']}/not-answered"
    refused = web.post(path, data={"note": "想当面问"})
    assert refused.status_code == 422 and "页面已过期" in refused.get_data(as_text=True)
    forged = web.post(path, data={"note": "想当面问", "csrf": "0" * 32})
    assert forged.status_code == 422
    assert system.service("intake").api["service"].find(created["tracking_no"])["status"] == "answered"


def test_the_workbenches_ask_for_a_session(system, web, demo):
    for path in ("/lead/", "/lead/cases/abc", "/dept/", "/dept/cases/abc"):
        resp = web.get(path)
        assert resp.status_code == 303 and resp.headers["Location"].startswith("/signin?next=")
        # A bearer token is for the API, not the pages: no session, the same answer.
        assert web.get(path, headers=token(system, "lead")).status_code == 303
    assert web.post("/lead/cases/abc/accept").headers["Location"].startswith("/signin")


@pytest.fixture
def app_client(system):
    return lambda: create_app(system).test_client()
