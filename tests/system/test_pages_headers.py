"""Every page's header (三长制 · …) names its audience, whichever service serves it: 群众服务 for
residents, 诉求办理 for leads and township staff, 部门工作台 for departments' clerks (shared.pages.text
SITES). The 回电 page (a lead calling a resident back), intake's refusal page for a lead or staff
member, and 代办 (a lead reporting for a resident) are intake's pages for leads: they say 诉求办理 too
(services/intake/web/handling.py HANDLING)."""
from __future__ import annotations

import re

import pytest

from shared.pages.text import SITES
from tests.support.dispatch import TOWNSHIP, case, pages_opened, submit
from tests.support.runtime import ADMIN_HEADERS
from tests.support.signin import sign_in_page
from tests.system.test_pages_case_photos import lead_web, report_of  # noqa: F401 (fixture)
from tests.system.test_pages_report_for import signed_in_lead



def header(html: str) -> str:
    found = re.search(r'<header class="top"><a href="[^"]*">三长制 · ([^<]+)</a></header>', html)
    assert found, html[:400]
    return found.group(1)


def test_the_leads_and_staff_pages_of_dispatch_say_so(system, lead_web):
    case_id = submit(system, lead_web)
    for path in ("/lead/", f"/lead/cases/{case_id}", "/lead/me"):
        assert header(lead_web.get(path).get_data(as_text=True)) == SITES["handling"], path


def test_the_call_back_page_has_the_leads_header(system, lead_web):
    case_id = submit(system, lead_web)
    page = lead_web.get(f"/resident/handling/{case(system, case_id)['report_id']}/contact?next=/lead/cases/{case_id}")
    assert page.status_code == 200
    assert header(page.get_data(as_text=True)) == SITES["handling"]
    assert '<header class="top"><a href="/">' in page.get_data(as_text=True)   # the entry page, not /resident/


def test_the_refusal_a_staff_member_sees_has_the_leads_header(system, web, demo):
    assert system.drain(15)
    case_id = submit(system, web)
    made = web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "李娟", "phone": "13700000002", "township": TOWNSHIP})
    assert made.status_code == 201
    staff = sign_in_page(web, system, "13700000002", "/staff/")
    refused = staff.get(f"/resident/handling/{report_of(system, case_id)['_id']}/contact?next=/lead/cases/{case_id}")
    assert refused.status_code == 403
    assert header(refused.get_data(as_text=True)) == SITES["handling"]


def test_the_residents_pages_keep_theirs(system, web, demo):
    assert header(web.get("/resident/").get_data(as_text=True)) == SITES["resident"]
    assert header(web.get(f"/resident/{TOWNSHIP}/report").get_data(as_text=True)) == SITES["resident"]



@pytest.fixture
def opened(tmp_path, clock):
    with pages_opened(tmp_path, clock) as runtime:
        yield runtime


def test_daiban_the_lead_reporting_for_a_resident_has_the_leads_header(opened):
    page = signed_in_lead(opened).get(f"/resident/{TOWNSHIP}/report?for=lead")
    assert page.status_code == 200 and "代办" in page.get_data(as_text=True)
    assert header(page.get_data(as_text=True)) == SITES["handling"]
    assert f'action="/resident/{TOWNSHIP}/report"' in page.get_data(as_text=True)   # still posts to intake
