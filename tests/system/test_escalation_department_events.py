"""dispatch's handlers for the departments' events (services/dispatch/department_events.py), applied to
a real dispatch case: a sign-off resolves the referred case, a return is recorded; replays change nothing."""
from __future__ import annotations

import pytest

from services.dispatch import department_events, transitions
from shared.domain.ids import case_id_for
from shared.cli import _load_demo
from shared.events import make_event
from tests.support.runtime import token
from tests.support.escalation import TOWNSHIP, dept_id


@pytest.fixture
def dispatch_case(system, web):
    """A resident's report that dispatch opened as a case, then referred beyond the township."""
    demo = _load_demo(system)
    resp = web.post("/api/v1/reports", headers=token(system, "client"),
                    json={"township": TOWNSHIP, "category": "housing", "description": "3栋屋顶漏水，雨天家里到处是水",
                          "reporter_phone": "13812345678", "channel": "phone", "address": demo["address"]})
    assert system.drain()
    cases = system.service("dispatch").api["cases"]
    case_id = case_id_for(resp.json["id"])
    cases.mutate(case_id, lambda c: transitions.refer(c, system.clock.now(), reason="需要部门协调解决",
                                                      actor=transitions.Actor("清溪镇李干事", "staff")))
    assert system.drain()
    return cases, cases.get(case_id)


def signed_off(case: dict, at) -> dict:
    return make_event("case.signed_off", case["township"],
                      {"case_id": case["_id"], "report_id": case["report_id"], "tracking_no": case["tracking_no"],
                       "category": case["category"], "department_id": dept_id("zjj"),
                       "department_name": "韶山市住房和城乡建设局", "note": "已完成屋面防水维修", "actor": "住建局张科员"},
                      at=at, correlation_id=case["report_id"])


def returned(case: dict, at) -> dict:
    return make_event("case.returned", case["township"],
                      {"case_id": case["_id"], "report_id": case["report_id"], "tracking_no": case["tracking_no"],
                       "category": case["category"], "department_id": dept_id("jtj"),
                       "department_name": "韶山市交通运输局", "reason": "不属本局职责",
                       "evidence": ["https://jtj.example.cn/duty.pdf"]},
                      at=at, correlation_id=case["report_id"])


def test_a_sign_off_resolves_the_referred_case_once(system, dispatch_case):
    cases, case = dispatch_case
    assert case["status"] == "referred"
    event = signed_off(case, system.clock.now())
    stored = department_events.on_case_signed_off(cases, system.clock, event)
    assert stored["status"] == "resolved" and stored["resolution"] == "已完成屋面防水维修"
    assert stored["assignee"] == {"level": "department", "unit_id": dept_id("zjj"), "unit_name": "韶山市住房和城乡建设局",
                                  "lead_id": None, "lead_name": None, "lead_phone_masked": None}
    assert stored["timer_due"] is None
    entry = stored["timeline"][-1]
    assert entry["type"] == "signed_off" and entry["actor"] == "住建局张科员" and entry["actor_role"] == "department"
    (resolved,) = [e for e in stored["outbox"] if e["type"] == "case.resolved"]
    assert resolved["payload"]["status"] == "resolved" and resolved["correlation_id"] == case["report_id"]
    # The same event again (redelivery) changes nothing and stages nothing.
    again = department_events.on_case_signed_off(cases, system.clock, event)
    assert again["timeline"] == stored["timeline"] and event["id"] in again["seen"]
    assert system.drain()
    assert [e["type"] for e in cases.get(case["_id"]).get("outbox", [])] == []
    assert system.drain()
    view = system.service("intake").api["reports"].get(case["report_id"])
    assert view["status"] == "resolved"


def test_a_return_is_recorded_and_the_case_stays_with_the_departments(system, dispatch_case):
    cases, case = dispatch_case
    event = returned(case, system.clock.now())
    stored = department_events.on_case_returned(cases, system.clock, event)
    assert stored["status"] == "referred"
    assert stored["department_returns"] == [{"department_id": dept_id("jtj"), "department_name": "韶山市交通运输局",
                                             "reason": "不属本局职责", "evidence": ["https://jtj.example.cn/duty.pdf"],
                                             "at": event["occurred_at"], "by": None}]
    entry = stored["timeline"][-1]
    assert entry["type"] == "department_returned" and entry["reason"] == "不属本局职责"
    assert not [e for e in stored.get("outbox", []) if e["id"] in (event["id"],)]
    assert department_events.on_case_returned(cases, system.clock, event)["timeline"] == stored["timeline"]


def test_events_for_cases_not_at_the_departments_change_nothing(system, dispatch_case):
    cases, case = dispatch_case
    department_events.on_case_signed_off(cases, system.clock, signed_off(case, system.clock.now()))
    resolved = cases.get(case["_id"])
    # A late return, or a second sign-off, for a case already resolved: no-ops.
    late = department_events.on_case_returned(cases, system.clock, returned(case, system.clock.now()))
    assert late["timeline"] == resolved["timeline"] and "department_returns" not in late
    second = department_events.on_case_signed_off(cases, system.clock, signed_off(case, system.clock.now()))
    assert second["timeline"] == resolved["timeline"] and second["resolution"] == resolved["resolution"]
    ghost = {**case, "_id": "0" * 32}
    assert department_events.on_case_signed_off(cases, system.clock, signed_off(ghost, system.clock.now())) is None
    assert department_events.on_case_returned(cases, system.clock, returned(ghost, system.clock.now())) is None


def test_the_handlers_are_keyed_for_wiring(system):
    cases = system.service("dispatch").api["cases"]
    wired = department_events.handlers(cases, system.clock)
    assert set(wired) == {"case.signed_off", "case.returned", "department.part_submitted"}
    from shared.runtime import bindings

    assert set(wired) <= set(bindings()["dispatch"])
