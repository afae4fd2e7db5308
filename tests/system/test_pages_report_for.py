"""代办 over HTTP (no browser): the lead's workbench links to intake's report page with ?for=lead;
intake sees the lead's page session and files the report with channel "lead". Without a lead's
session the page asks for sign-in; a forged form (no CSRF value) stores nothing; bad input keeps
what was typed."""
from __future__ import annotations

import re

import pytest

from shared.web import create_app
from tests.support.dispatch import pages_opened, posts
from tests.support.signin import sign_in_page

TOWNSHIP = "430382100"
PHONE = "13973200001"


@pytest.fixture
def system(tmp_path, clock):
    with pages_opened(tmp_path, clock) as runtime:
        yield runtime


def signed_in_lead(system):
    return sign_in_page(create_app(system).test_client(), system, posts(system)["neighbourhood"]["lead"]["phone"])


def reports(system) -> list[dict]:
    return system.service("intake").api["reports"].collection.find({}, limit=100)


def form(page: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))


def test_a_lead_reports_for_a_resident(system):
    web = signed_in_lead(system)
    link = f"/resident/{TOWNSHIP}/report?for=lead"
    assert link in web.get("/lead/").get_data(as_text=True)
    page = web.get(link).get_data(as_text=True)
    assert "代群众反映问题" in page and 'name="on_behalf"' in page
    hidden = form(page)
    body = {**hidden, "category": "road", "description": "路面塌了一个坑", "address": "韶山村一组12号"}
    missing = web.post(f"/resident/{TOWNSHIP}/report", data=body, content_type="multipart/form-data")
    text = missing.get_data(as_text=True)
    assert 'id="phone-error"' in text and "路面塌了一个坑</textarea>" in text and 'name="on_behalf"' in text
    assert reports(system) == []
    done = web.post(f"/resident/{TOWNSHIP}/report", data={**body, "phone": PHONE}, content_type="multipart/form-data")
    assert done.status_code == 303
    assert [r["channel"] for r in reports(system)] == ["lead"]


def test_report_for_needs_a_leads_session_and_its_csrf_value(system):
    anonymous = create_app(system).test_client()
    assert anonymous.get(f"/resident/{TOWNSHIP}/report?for=lead").headers["Location"].startswith("/signin")
    resident_page = anonymous.get(f"/resident/{TOWNSHIP}/report").get_data(as_text=True)
    body = {"submission": form(resident_page)["submission"], "on_behalf": "1", "category": "road",
            "description": "路面塌了一个坑", "address": "韶山村一组12号", "phone": PHONE}
    refused = anonymous.post(f"/resident/{TOWNSHIP}/report", data=body, content_type="multipart/form-data")
    assert refused.status_code == 303 and refused.headers["Location"].startswith("/signin")
    web = signed_in_lead(system)
    forged = web.post(f"/resident/{TOWNSHIP}/report", data=body, content_type="multipart/form-data")
    assert forged.status_code == 403
    assert reports(system) == []
