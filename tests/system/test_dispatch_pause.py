"""Pausing a case's clock over HTTP and the bus (embedded runtime, fake clock): the holder pauses for
the resident, the resident is asked (notify) and answers (intake → dispatch), the case resumes; a
pause for an outside event ends at its date, any pause at its cap (the SLA sweeper); staff list and
board show paused cases; the policy's caps are validated and obeyed; 409/404/422 as for every action."""
from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from services.dispatch import sla
from shared.clock import iso, parse_iso
from shared.domain.ids import case_id_for
from shared.domain.workdays import add_working_seconds
from tests.support.dispatch import TOWNSHIP, api, case, holder, kinds, posts, sweep
from tests.support.runtime import token

ASK = {"reason": "awaiting_resident", "note": "请补充漏水位置的照片和门牌号"}


@pytest.fixture
def opened(system, web, demo):
    """A resident's report, its case accepted by the 邻长: (case id, lead headers, the resident's headers)."""
    body = {"township": TOWNSHIP, "address": "韶山村一组12号", "category": "water",
            "description": "厨房水管漏水好几天了", "reporter_phone": "13800000001", "channel": "mini_program"}
    created = web.post("/api/v1/reports", json=body, headers=token(system, "client"))
    assert created.status_code == 201, created.json
    assert system.drain()
    case_id = case_id_for(created.json["id"])
    lead = holder(system, posts(system)["neighbourhood"])
    assert web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=lead).status_code == 200
    resident = {"Authorization": f"Bearer {created.json['resident_token']}"}
    return case_id, lead, resident, created.json["tracking_no"]


def staff(system):
    return token(system, "staff", townships=(TOWNSHIP,), name="镇综治中心")


def deliveries(system, web, case_id):
    resp = web.get("/api/v1/deliveries", query_string={"township": TOWNSHIP, "case_id": case_id},
                   headers=staff(system))
    assert resp.status_code == 200, resp.json
    return [d["template_key"] for d in resp.json]


def test_paused_for_the_resident_who_answers_and_the_clock_runs_again(system, web, clock, opened):
    case_id, lead, resident, tracking_no = opened
    due_before = case(system, case_id)["resolve_due"]
    resp = web.post(f"/api/v1/cases/{case_id}/pause", json=ASK, headers=lead)
    assert resp.status_code == 200, resp.json
    assert resp.json["timing"] == "paused" and resp.json["pause"]["reason"] == "awaiting_resident"
    assert resp.json["timer"]["kind"] == "pause_end" and resp.json["timeline"][-1]["type"] == "paused"
    assert system.drain()
    assert "case.paused:resident" in deliveries(system, web, case_id)          # 请补充材料
    view = web.get(f"/api/v1/reports/{tracking_no}", headers=resident).json
    assert view["awaiting"]["note"] == ASK["note"] and view["timeline"][-1]["text"].startswith("请您补充材料")
    listed = web.get(f"/api/v1/townships/{TOWNSHIP}/cases", query_string={"show": "paused"}, headers=staff(system))
    assert [c["id"] for c in listed.json] == [case_id]
    mine = web.get("/api/v1/my/cases", query_string={"show": "paused"}, headers=lead)
    assert [c["id"] for c in mine.json] == [case_id] and mine.json[0]["timing"] == "paused"
    assert web.get("/api/v1/my/cases", query_string={"show": "overdue"}, headers=lead).json == []
    board = web.get(f"/api/v1/townships/{TOWNSHIP}/board", headers=staff(system)).json
    assert [c["id"] for c in board["paused_cases"]] == [case_id]

    clock.advance(hours=3)
    answered = web.post(f"/api/v1/reports/{tracking_no}/supplement",
                        json={"text": "在厨房水槽下面，12号，电话13800000009"}, headers=resident)
    assert answered.status_code == 200, answered.json
    assert answered.json["awaiting"] is None
    assert system.drain()
    doc = case(system, case_id)
    assert doc["pause"] is None and kinds(doc)[-1] == "resumed"
    assert doc["timeline"][-1]["reason"] == "群众已补充材料"
    assert doc["timeline"][-1]["note"].startswith("在厨房水槽下面，12号，电话138") and "13800000009" not in str(doc)
    assert doc["resolve_due"] == iso(add_working_seconds(parse_iso(due_before), 3 * 3600))
    assert "case.resumed:assignee" in deliveries(system, web, case_id)
    again = web.post(f"/api/v1/reports/{tracking_no}/supplement", json={"text": "再补充一点"}, headers=resident)
    assert again.status_code == 409
    listed = web.get(f"/api/v1/townships/{TOWNSHIP}/cases", query_string={"show": "paused"}, headers=staff(system))
    assert listed.json == []


def test_the_holder_resumes_and_the_sla_timers_wait_during_a_pause(system, web, clock, opened):
    case_id, lead, _, _ = opened
    due_before = case(system, case_id)["resolve_due"]
    web.post(f"/api/v1/cases/{case_id}/pause", json=ASK, headers=lead)
    clock.set(parse_iso(due_before) + timedelta(minutes=30))   # the old deadline passes while paused
    sweep(system)
    doc = case(system, case_id)
    assert doc["level"] == "neighbourhood" and doc["pause"] and "breached" not in kinds(doc)
    resp = web.post(f"/api/v1/cases/{case_id}/resume", json={"note": "住户电话里说清楚了"}, headers=lead)
    assert resp.status_code == 200 and resp.json["pause"] is None and resp.json["timing"] != "paused"
    assert resp.json["resolve_due"] > iso(clock.now()) and resp.json["timer"]["kind"] != "pause_end"
    assert web.post(f"/api/v1/cases/{case_id}/resume", json={}, headers=lead).status_code == 409


def test_an_outside_event_pause_ends_at_its_date_and_any_pause_at_its_cap(system, web, clock, opened):
    case_id, lead, _, _ = opened
    until = clock.now() + timedelta(hours=5)
    body = {"reason": "awaiting_external", "note": "等待自来水公司施工队排期", "until": iso(until)}
    assert web.post(f"/api/v1/cases/{case_id}/pause", json=body, headers=lead).status_code == 200
    clock.set(until + timedelta(seconds=1))
    assert sweep(system) >= 1
    doc = case(system, case_id)
    assert doc["pause"] is None and doc["timeline"][-1]["reason"] == "约定时间已到，自动恢复计时"

    assert web.post(f"/api/v1/cases/{case_id}/pause", json=ASK, headers=lead).status_code == 200
    resume_at = case(system, case_id)["pause"]["resume_at"]      # 3wd in all, 5 h of it used
    clock.set(parse_iso(resume_at) + timedelta(seconds=1))
    sweep(system)
    doc = case(system, case_id)
    assert doc["pause"] is None and doc["pauses"][-1]["end_reason"] == "cap"
    assert doc["paused_working_seconds"] == pytest.approx(3 * 86400, abs=2)
    third = web.post(f"/api/v1/cases/{case_id}/pause", json=ASK, headers=lead)
    assert third.status_code == 409 and "上限" in third.json["message"]


@pytest.mark.parametrize("body,field", [
    ({"note": "缺照片"}, "reason"),
    ({"reason": "waiting", "note": "缺照片"}, "reason"),
    ({"reason": "awaiting_resident"}, "note"),
    ({"reason": "awaiting_resident", "note": "   "}, "note"),
    ({"reason": "awaiting_resident", "note": "缺照片", "until": "2026-11-05T09:00:00+08:00"}, "until"),
    ({"reason": "awaiting_external", "note": "排期", "until": "2026-11-05T09:00:00"}, "until"),
    ({"reason": "awaiting_external", "note": "排期", "until": "2020-01-01T09:00:00+08:00"}, "until"),
    ({"reason": "awaiting_external", "note": "排期", "until": "2026-12-30T09:00:00+08:00"}, "until"),
    ({"reason": "awaiting_resident", "note": "缺照片", "status": "resolved"}, "status"),
])
def test_a_bad_pause_names_the_field_and_changes_nothing(system, web, opened, body, field):
    case_id, lead, _, _ = opened
    before = case(system, case_id)
    resp = web.post(f"/api/v1/cases/{case_id}/pause", json=body, headers=lead)
    assert resp.status_code == 422 and field in resp.json["errors"]["json"], resp.json
    after = case(system, case_id)
    assert after["timeline"] == before["timeline"] and not after.get("pause") and not after.get("pauses")


def test_who_may_pause_and_when(system, web, demo):
    from tests.support.dispatch import submit

    case_id = submit(system, web)
    p = posts(system)
    lead = holder(system, p["neighbourhood"])
    early = web.post(f"/api/v1/cases/{case_id}/pause", json=ASK, headers=lead)
    assert early.status_code == 409 and "先接单" in early.json["message"]
    web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=lead)
    outsider = token(system, "lead", townships=("430382101",), unit_id=p["neighbourhood"]["_id"], name="外镇")
    assert web.post(f"/api/v1/cases/{case_id}/pause", json=ASK, headers=outsider).status_code == 404
    assert web.post(f"/api/v1/cases/{case_id}/pause", json=ASK, headers=staff(system)).status_code == 403
    assert web.post(f"/api/v1/cases/{case_id}/pause", json=ASK).status_code == 401
    other_staff = token(system, "staff", townships=("430382101",), name="外镇")
    assert web.get("/api/v1/townships/430382100/cases", query_string={"show": "paused"},
                   headers=other_staff).status_code in (403, 404)


def test_the_townships_policy_sets_the_caps(system, web, opened):
    case_id, lead, _, _ = opened
    url = f"/api/v1/townships/{TOWNSHIP}/sla-policy"
    assert web.get(url, headers=staff(system)).json["tiers"]["general"]["pause"] == {"max_total": "3wd", "max_count": 2}
    policy = copy.deepcopy(sla.DEFAULT_POLICY)
    policy["tiers"]["general"]["pause"]["max_count"] = 11
    bad = web.put(url, json=policy, headers=staff(system))
    assert bad.status_code == 422 and "max_count" in bad.json["errors"]["json"]["tiers"]["general"]["pause"]
    policy["tiers"]["general"]["pause"] = {"max_total": "1d", "max_count": 0}
    assert web.put(url, json=policy, headers=staff(system)).status_code == 200
    refused = web.post(f"/api/v1/cases/{case_id}/pause", json=ASK, headers=lead)
    assert refused.status_code == 409 and "不能挂起" in refused.json["message"]
