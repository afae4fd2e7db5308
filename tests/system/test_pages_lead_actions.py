"""The lead's workbench, second slice, over HTTP (no browser): 挂起 and 恢复 on the case page and one
tap to log a visit from 我的积分与走访. Bad input keeps what was typed with a Chinese message; no
session → sign-in; a case or household outside the lead's post → 404; a write without the CSRF
value changes nothing."""
from __future__ import annotations

import pytest

from tests.support.dispatch import case, holder, posts, submit
from tests.support.signin import csrf, sign_in_page


@pytest.fixture
def lead_web(system, web, demo):
    """The test client signed in through the pages as the demo path's 邻长 (the session cookie)."""
    assert system.drain(15)   # the roster's accounts
    return sign_in_page(web, system, posts(system)["neighbourhood"]["lead"]["phone"], "/lead/", "10.0.0.7")


def accepted_case(system, web) -> str:
    case_id = submit(system, web)
    assert web.post(f"/lead/cases/{case_id}/accept", data={"csrf_token": csrf(web)}).status_code == 303
    return case_id


def test_a_lead_pauses_with_a_reason_and_resumes(system, lead_web):
    case_id = accepted_case(system, lead_web)
    page = lead_web.get(f"/lead/cases/{case_id}").get_data(as_text=True)
    assert 'id="pause-form"' in page and 'id="resume-form"' not in page
    missing = lead_web.post(f"/lead/cases/{case_id}/pause", data={"csrf_token": csrf(lead_web), "note": "请补充漏水位置照片"})
    text = missing.get_data(as_text=True)
    assert missing.status_code == 422 and 'id="pause-reason-error"' in text and "请选择挂起原因" in text
    assert "请补充漏水位置照片</textarea>" in text                            # what was typed stays
    until = lead_web.post(f"/lead/cases/{case_id}/pause", data={
        "csrf_token": csrf(lead_web), "reason": "awaiting_resident", "note": "请补充照片", "until": "2026-11-05T09:00"})
    assert until.status_code == 422 and "只有等待外部事项时可填写恢复时间" in until.get_data(as_text=True)
    assert case(system, case_id).get("pause") is None
    done = lead_web.post(f"/lead/cases/{case_id}/pause", data={
        "csrf_token": csrf(lead_web), "reason": "awaiting_resident", "note": "请补充漏水位置的照片"})
    assert done.status_code == 303 and done.headers["Location"].endswith("done=pause")
    assert case(system, case_id)["pause"]["reason"] == "awaiting_resident"
    page = lead_web.get(f"/lead/cases/{case_id}").get_data(as_text=True)
    assert 'id="resume-form"' in page and "待群众补充材料" in page and 'id="pause-form"' not in page
    resumed = lead_web.post(f"/lead/cases/{case_id}/resume", data={"csrf_token": csrf(lead_web), "note": "群众已电话说明"})
    assert resumed.status_code == 303
    after = case(system, case_id)
    assert not after.get("pause") and after["status"] == "accepted"
    assert [e["type"] for e in after["timeline"]][-2:] == ["paused", "resumed"]


def test_pause_without_the_csrf_value_or_a_session_changes_nothing(system, web, demo):
    case_id = submit(system, web)
    holder_headers = holder(system, posts(system)["neighbourhood"])
    assert web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=holder_headers).status_code == 200
    no_session = web.post(f"/lead/cases/{case_id}/pause", data={"reason": "awaiting_resident", "note": "请补充照片"})
    assert no_session.status_code == 303 and no_session.headers["Location"].startswith("/signin")
    assert web.get("/lead/me").headers["Location"].startswith("/signin")
    assert web.post("/lead/me/visits", data={"household_id": "x", "mode": "phone"}).headers["Location"].startswith("/signin")
    assert case(system, case_id).get("pause") is None


def test_a_forged_pause_is_refused(system, lead_web):
    case_id = accepted_case(system, lead_web)
    refused = lead_web.post(f"/lead/cases/{case_id}/pause", data={"reason": "awaiting_resident", "note": "请补充照片"})
    assert refused.status_code in (403, 422)
    assert case(system, case_id).get("pause") is None


def test_a_case_that_is_not_the_leads_is_not_found(system, lead_web):
    case_id = accepted_case(system, lead_web)
    lead_headers = holder(system, posts(system)["neighbourhood"])
    moved = lead_web.post(f"/api/v1/cases/{case_id}/escalate", json={"reason": "beyond_ability"}, headers=lead_headers)
    assert moved.status_code == 200, moved.get_data(as_text=True)
    for action in ("pause", "resume"):
        gone = lead_web.post(f"/lead/cases/{case_id}/{action}", data={
            "csrf_token": csrf(lead_web), "reason": "awaiting_external", "note": "等供电所"})
        assert gone.status_code == 404
    assert lead_web.get("/lead/cases/no-such-case").status_code == 404
    assert case(system, case_id).get("pause") is None


def test_one_tap_logs_a_visit(system, lead_web):
    sup = system.service("dispatch").api["supervision"]
    page = lead_web.get("/lead/me").get_data(as_text=True)
    assert 'class="visit-form"' in page and 'value="phone"' in page
    lead = posts(system)["neighbourhood"]
    household = sup.visits.org.households.find({"neighbourhood_id": lead["_id"]}, limit=1)[0]
    bad = lead_web.post("/lead/me/visits", data={"csrf_token": csrf(lead_web), "household_id": household["_id"],
                                                 "mode": "fax"})
    assert bad.status_code == 422 and "请选择走访方式" in bad.get_data(as_text=True)
    assert sup.visits.list(household["township"], household["_id"]) == []
    done = lead_web.post("/lead/me/visits", data={"csrf_token": csrf(lead_web), "household_id": household["_id"],
                                                  "mode": "phone"})
    assert done.status_code == 303 and done.headers["Location"] == "/lead/me?done=visit"
    visits = sup.visits.list(household["township"], household["_id"])
    assert [v["mode"] for v in visits] == ["phone"]
    assert "走访已记录" in lead_web.get(done.headers["Location"]).get_data(as_text=True)
    other = next(h for h in sup.visits.org.households.find({"township": household["township"]}, limit=500)
                 if h["neighbourhood_id"] != lead["_id"])
    refused = lead_web.post("/lead/me/visits", data={"csrf_token": csrf(lead_web), "household_id": other["_id"],
                                                     "mode": "in_person"})
    assert refused.status_code == 404
    assert sup.visits.list(other["township"], other["_id"]) == []
