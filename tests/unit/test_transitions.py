"""A case's life as pure functions (services/dispatch/transitions.py): which action applies in which state,
what each one records in the append-only timeline, and the event it causes. The HTTP side of the same rules
(409 with the reason, who may act) is in tests/system/test_dispatch_actions.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.dispatch import sla, transitions
from services.dispatch.cases import new_case
from shared.domain.statuses import CLOSED_STATUSES
from services.dispatch.transitions import Actor, WrongState

TOWNSHIP = "430382100"
AT = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)
LEAD = Actor("周桂香", "lead")
STAFF = Actor("镇综治中心", "staff")
POLICY = sla.default_policy()
NB = {"_id": "u-nb1", "level": "neighbourhood", "name": "第1邻", "parent_id": "u-grp1",
      "lead": {"name": "周桂香", "phone": "13873100001"}}
NB2 = {"_id": "u-nb2", "level": "neighbourhood", "name": "第2邻", "parent_id": "u-grp1",
       "lead": {"name": "李春生", "phone": "13873100002"}}


def fresh(category: str = "environment") -> dict:
    report = {"report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "category": category,
              "description": "门口路灯坏了一个星期", "submitted_at": "2026-11-02T01:00:00.000000Z", "channel": "phone"}
    case, _ = new_case(report, TOWNSHIP, NB, POLICY, AT, located=True, neighbourhood_id="u-nb1", skipped=[],
                       event_id="e-1")
    return case


def later(minutes: int) -> datetime:
    return AT + timedelta(minutes=minutes)


def test_a_new_case_is_assigned_with_its_clocks_and_two_timeline_entries():
    case = fresh()
    assert case["status"] == "assigned" and case["level"] == "neighbourhood" and case["step"] == 1
    assert [e["type"] for e in case["timeline"]] == ["reported", "assigned"]
    assert case["accept_due"] < case["resolve_due"] and case["warn_accept_at"] < case["accept_due"]
    assert case["assignee"]["lead_name"] == "周桂香" and case["assignee"]["lead_phone_masked"] == "138****0001"


def test_an_instant_category_opens_on_the_general_clock():
    instant = next(c for c, t in POLICY.category_tiers.items() if t == "instant")
    assert fresh(instant)["tier"] == "general"


def test_accept_then_progress_then_resolve():
    case = fresh()
    [accepted] = transitions.accept(case, LEAD, later(10), note="马上去看")
    assert accepted["type"] == "case.accepted" and case["status"] == "accepted"
    [progress] = transitions.progress(case, LEAD, later(20), "已联系电工")
    assert progress["type"] == "case.progress" and case["status"] == "accepted"
    [resolved] = transitions.resolve(case, LEAD, later(60), "已更换灯泡")
    assert resolved["type"] == "case.resolved" and case["status"] == "resolved"
    assert case["resolution"] == "已更换灯泡" and case["resolved_at"].startswith("2026-11-02T02:00")
    assert [e["type"] for e in case["timeline"]][-3:] == ["accepted", "progress", "resolved"]
    assert case["timeline"][-1]["actor"] == "周桂香"


@pytest.mark.parametrize("action,message", [
    (lambda c: transitions.progress(c, LEAD, later(5), "进展"), "请先接单再填报进展"),
    (lambda c: transitions.resolve(c, LEAD, later(5), "办结"), "请先接单再办结"),
])
def test_nothing_but_accepting_before_the_case_is_accepted(action, message):
    case = fresh()
    with pytest.raises(WrongState, match=message):
        action(case)
    assert [e["type"] for e in case["timeline"]] == ["reported", "assigned"]  # nothing recorded


def test_a_case_is_accepted_once():
    case = fresh()
    transitions.accept(case, LEAD, later(5))
    with pytest.raises(WrongState, match="不能重复接单"):
        transitions.accept(case, LEAD, later(6))


@pytest.mark.parametrize("status", CLOSED_STATUSES)
@pytest.mark.parametrize("action,verb", [
    (lambda c: transitions.accept(c, LEAD, later(5)), "接单"),
    (lambda c: transitions.progress(c, LEAD, later(5), "x"), "填报进展"),
    (lambda c: transitions.resolve(c, LEAD, later(5), "x"), "办结"),
    (lambda c: transitions.supervise(c, STAFF, later(5), "x"), "督办"),
    (lambda c: transitions.reassign(c, NB2, POLICY, STAFF, later(5)), "改派"),
    (lambda c: transitions.recategorise(c, POLICY, STAFF, later(5), category="hazard", tier=None), "修改分类"),
    (lambda c: transitions.refer(c, later(5), reason="x", actor=STAFF), "上报"),
])
def test_a_closed_case_refuses_every_action_naming_its_state(status, action, verb):
    case = fresh()
    case["status"] = status
    with pytest.raises(WrongState, match=f"工单{transitions.STATUS_TEXT[status]}，不能{verb}"):
        action(case)


def test_supervision_is_answered_once_and_the_answer_reaches_the_resident_as_progress():
    case = fresh()
    [supervised] = transitions.supervise(case, STAFF, later(5), "请今天内到现场")
    assert supervised["type"] == "case.supervised"
    [sup] = case["supervisions"]
    assert sup["answered_at"] is None and sup["level"] == "neighbourhood" and sup["unit_name"] == "第1邻"
    [answer] = transitions.answer_supervision(case, sup["id"], LEAD, later(30), "已到现场")
    assert answer["type"] == "case.progress" and answer["payload"]["reason"] == "答复督办"
    assert case["supervisions"][0]["answered_by"] == "周桂香"
    with pytest.raises(WrongState, match="该督办已答复"):
        transitions.answer_supervision(case, sup["id"], LEAD, later(31), "再答")
    with pytest.raises(LookupError):
        transitions.answer_supervision(case, "no-such-id", LEAD, later(31), "答")


def test_reassigning_restarts_the_clocks_and_names_the_previous_holder():
    case = fresh()
    [event] = transitions.reassign(case, NB2, POLICY, STAFF, later(30), note="地址在第2邻")
    assert event["type"] == "case.reassigned" and event["payload"]["previous"]["unit_id"] == "u-nb1"
    assert case["unit_id"] == "u-nb2" and case["step"] == 2 and case["assigned_at"].startswith("2026-11-02T01:30")
    with pytest.raises(WrongState, match="无需改派"):
        transitions.reassign(case, NB2, POLICY, STAFF, later(31))


def test_a_new_category_brings_its_tier_and_recounts_the_clocks():
    case = fresh("environment")
    before = case["resolve_due"], case["promise_due"]
    target = next(c for c, t in POLICY.category_tiers.items() if t == "difficult")
    [event] = transitions.recategorise(case, POLICY, STAFF, later(5), category=target, tier=None)
    assert event["type"] == "case.updated" and case["tier"] == "difficult" and case["category"] == target
    assert (case["resolve_due"], case["promise_due"]) != before
    entry = case["timeline"][-1]
    assert entry["from_category"] == "environment" and entry["tier"] == "difficult"


def test_recategorising_to_the_same_category_and_tier_is_refused():
    case = fresh("environment")
    with pytest.raises(WrongState, match="均未改变"):
        transitions.recategorise(case, POLICY, STAFF, later(5), category="environment", tier=None)


def test_a_tier_given_explicitly_wins_and_instant_becomes_general():
    case = fresh("environment")
    transitions.recategorise(case, POLICY, STAFF, later(5), category=None, tier="complex")
    assert case["tier"] == "complex" and case["category"] == "environment"
    transitions.recategorise(case, POLICY, STAFF, later(6), category=None, tier="instant")
    assert case["tier"] == "general"


@pytest.mark.parametrize("kind,due_field,reason", [("warn_accept", "accept_due", "即将超时未接单"),
                                                   ("warn_resolve", "resolve_due", "即将超时未办结")])
def test_a_warning_names_its_deadline(kind, due_field, reason):
    case = fresh()
    [event] = transitions.warn(case, kind, later(90), caused_by="timer-1")
    assert event["type"] == "sla.warning" and event["payload"]["reason"] == reason
    assert event["payload"]["due_at"] == case[due_field]
    assert case["timeline"][-1]["deadline"] == kind.removeprefix("warn_")


@pytest.mark.parametrize("kind,reason", [("accept", "超时未接单"), ("resolve", "超时未办结")])
def test_a_breach_is_recorded_against_the_level_that_let_the_time_run_out(kind, reason):
    case = fresh()
    [event] = transitions.breach(case, kind, later(121), caused_by="timer-1")
    assert event["type"] == "sla.breached" and event["payload"]["reason"] == reason
    [b] = case["breaches"]
    assert (b["level"], b["unit_id"], b["unit_name"], b["kind"], b["step"]) == \
        ("neighbourhood", "u-nb1", "第1邻", kind, 1)
    assert case["status"] == "assigned"  # escalating is the caller's business


def test_the_timeline_is_append_only():
    case = fresh()
    first = [dict(e) for e in case["timeline"]]
    transitions.accept(case, LEAD, later(5))
    transitions.supervise(case, STAFF, later(6), "快")
    transitions.resolve(case, LEAD, later(7), "好了")
    assert case["timeline"][:2] == first and len(case["timeline"]) == 5
    times = [e["at"] for e in case["timeline"]]
    assert times == sorted(times)
