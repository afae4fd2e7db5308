"""Pausing a case's clock (services/dispatch/pausing.py) with a hand-moved time: the rules for when a
case may be paused, the caps per tier, the deadlines moving by the working time a pause used, the
pause's own timer, and what figures and views make of it. The HTTP side is in
tests/system/test_dispatch_pause.py."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
from marshmallow import ValidationError

from services.dispatch import pausing, sla, transitions, views
from services.dispatch.cases import new_case
from services.dispatch.firing import SlaTimers
from services.dispatch.pausing import PauseRefused
from services.dispatch.supervision.facts import derive
from services.dispatch.transitions import Actor
from shared.clock import iso, parse_iso
from shared.domain.workdays import add_working_seconds, working_seconds_between

TOWNSHIP = "430382100"
BJ = timezone(timedelta(hours=8))
MONDAY_9 = datetime(2026, 11, 2, 9, 0, tzinfo=BJ)   # a working Monday, 09:00 Beijing time
LEAD = Actor("周桂香", "lead")
POLICY = sla.default_policy()
GENERAL = sla.pause_limits(POLICY, "general")
NB = {"_id": "u-nb1", "level": "neighbourhood", "name": "第1邻", "parent_id": "u-grp1",
      "lead": {"name": "周桂香", "phone": "13873100001"}}
GROUP = {"_id": "u-grp1", "level": "group", "name": "一组", "parent_id": "u-area1",
         "lead": {"name": "李春生", "phone": "13873100002"}}
HOUR = 3600


def accepted_case(at: datetime = MONDAY_9) -> dict:
    report = {"report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "category": "environment",
              "description": "厨房水管漏水", "submitted_at": iso(at), "channel": "phone"}
    case, _ = new_case(report, TOWNSHIP, NB, POLICY, at, located=True, neighbourhood_id="u-nb1", skipped=[],
                       event_id="e-1")
    transitions.accept(case, LEAD, at)
    return case


def pause(case: dict, at: datetime, reason: str = "awaiting_resident", until: datetime | None = None):
    return pausing.pause(case, GENERAL, LEAD, at, reason=reason, note="请补充漏水位置的照片", until=until)


# -- working time ------------------------------------------------------------------------------------

def test_a_weekend_inside_a_pause_is_not_working_time():
    friday_10 = datetime(2026, 11, 6, 10, 0, tzinfo=BJ)
    monday_10 = datetime(2026, 11, 9, 10, 0, tzinfo=BJ)
    assert working_seconds_between(friday_10, monday_10) == (14 + 10) * HOUR
    # and adding it back skips the weekend: 16:00 Friday + 24 working hours is 16:00 Monday
    assert add_working_seconds(datetime(2026, 11, 6, 16, 0, tzinfo=BJ), 24 * HOUR) == \
        datetime(2026, 11, 9, 16, 0, tzinfo=BJ)


def test_the_national_day_holiday_is_skipped_both_ways():
    before = datetime(2026, 9, 30, 12, 0, tzinfo=BJ)
    after = datetime(2026, 10, 8, 12, 0, tzinfo=BJ)       # 1–7 October are the holiday
    assert working_seconds_between(before, after) == 24 * HOUR
    assert add_working_seconds(before, 24 * HOUR) == after
    assert working_seconds_between(after, before) == 0 and add_working_seconds(before, 0) == before


# -- pausing and resuming ------------------------------------------------------------------------------

def test_only_an_accepted_case_is_paused():
    report = {"report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "category": "environment",
              "description": "厨房水管漏水", "submitted_at": iso(MONDAY_9), "channel": "phone"}
    case, _ = new_case(report, TOWNSHIP, NB, POLICY, MONDAY_9, located=True, neighbourhood_id="u-nb1",
                       skipped=[], event_id="e-1")
    with pytest.raises(PauseRefused, match="请先接单再挂起"):
        pause(case, MONDAY_9)
    case = accepted_case()
    pause(case, MONDAY_9 + timedelta(minutes=5))
    with pytest.raises(PauseRefused, match="工单已挂起"):
        pause(case, MONDAY_9 + timedelta(minutes=6))


def test_a_pause_stops_the_sla_timers_and_arms_its_own_end_at_the_cap():
    case = accepted_case()
    assert case["timer"]["kind"] == "warn_resolve"
    [event] = pause(case, MONDAY_9 + timedelta(hours=1))
    # general: 3 working days in all, so a first pause at Monday 10:00 ends by itself Thursday 10:00
    thursday_10 = datetime(2026, 11, 5, 10, 0, tzinfo=BJ)
    assert case["timer"] == {"kind": "pause_end", "step": case["step"], "due": iso(thursday_10)}
    assert case["timer_due"] == iso(thursday_10)
    assert event["type"] == "case.paused" and event["payload"]["pause_reason"] == "awaiting_resident"
    assert event["payload"]["note"] == "请补充漏水位置的照片" and event["payload"]["resume_at"] == iso(thursday_10)
    entry = case["timeline"][-1]
    assert entry["type"] == "paused" and entry["reason"] == "待群众补充材料" and entry["actor"] == "周桂香"
    assert views.summary(case, MONDAY_9 + timedelta(hours=2))["timing"] == "paused"


def test_resuming_moves_every_deadline_by_the_working_time_paused():
    case = accepted_case()
    before = {f: case[f] for f in pausing.SHIFTED}
    pause(case, MONDAY_9 + timedelta(hours=1))
    [event] = pausing.resume(case, LEAD, MONDAY_9 + timedelta(hours=3), why="holder", note="住户已发来照片")
    for field, due in before.items():
        assert parse_iso(case[field]) == add_working_seconds(parse_iso(due), 2 * HOUR), field
    assert event["type"] == "case.resumed" and event["payload"]["paused_seconds"] == 2 * HOUR
    assert case["pause"] is None and case["paused_seconds"] == 2 * HOUR
    assert case["pauses"][0]["end_reason"] == "holder" and case["timer"]["kind"] == "warn_resolve"
    assert [e["type"] for e in case["timeline"]][-2:] == ["paused", "resumed"]
    with pytest.raises(PauseRefused, match="未挂起"):
        pausing.resume(case, LEAD, MONDAY_9 + timedelta(hours=4), why="holder")


def test_a_pause_over_the_weekend_gives_back_only_the_working_hours():
    friday_14 = datetime(2026, 11, 6, 14, 0, tzinfo=BJ)
    case = accepted_case(friday_14)
    due = parse_iso(case["resolve_due"])
    pause(case, friday_14 + timedelta(hours=1))                      # Friday 15:00
    pausing.resume(case, LEAD, datetime(2026, 11, 9, 9, 0, tzinfo=BJ), why="holder")  # Monday 09:00
    assert case["pauses"][0]["working_seconds"] == (9 + 9) * HOUR
    assert parse_iso(case["resolve_due"]) == add_working_seconds(due, 18 * HOUR)


def test_the_number_of_pauses_is_capped_per_tier():
    case = accepted_case()
    for hour in (1, 3):
        pause(case, MONDAY_9 + timedelta(hours=hour))
        pausing.resume(case, LEAD, MONDAY_9 + timedelta(hours=hour + 1), why="holder")
    with pytest.raises(PauseRefused, match="已挂起2次，达到上限2次"):
        pause(case, MONDAY_9 + timedelta(hours=6))


def test_the_total_pause_time_is_capped_and_an_until_past_the_cap_is_refused():
    case = accepted_case()
    pause(case, MONDAY_9)
    pausing.resume(case, LEAD, MONDAY_9 + timedelta(days=2), why="holder")   # 2 working days used
    wednesday_9 = MONDAY_9 + timedelta(days=2)
    with pytest.raises(PauseRefused, match="恢复时间超过挂起上限") as refused:
        pause(case, wednesday_9, reason="awaiting_external", until=wednesday_9 + timedelta(days=2))
    assert refused.value.field == "until"
    with pytest.raises(PauseRefused, match="必须晚于现在"):
        pause(case, wednesday_9, reason="awaiting_external", until=wednesday_9 - timedelta(hours=1))
    [event] = pause(case, wednesday_9)
    assert event["payload"]["resume_at"] == iso(wednesday_9 + timedelta(days=1))   # the day that is left


def test_a_tier_that_allows_no_pause_refuses_it():
    with pytest.raises(PauseRefused, match="不能挂起"):
        pausing.pause(accepted_case(), sla.PauseLimits(sla.Duration.parse("1wd"), 0), LEAD, MONDAY_9,
                      reason="awaiting_external", note="等待施工队排期")


def test_the_timer_ends_the_pause_at_the_date_given_for_an_outside_event():
    case = accepted_case()
    until = MONDAY_9 + timedelta(hours=5)
    pause(case, MONDAY_9 + timedelta(hours=1), reason="awaiting_external", until=until)
    assert case["timer"]["kind"] == "pause_end" and case["timer_due"] == iso(until)
    timers = SlaTimers(cases=None, escalator=None, clock=None)   # _fire_due needs neither for a pause
    assert timers._fire_due(copy.deepcopy(case), until - timedelta(seconds=1)) == []
    [event] = timers._fire_due(case, until)
    assert event["type"] == "case.resumed" and event["payload"]["actor"] == "system"
    assert case["pauses"][0]["end_reason"] == "until" and case["timeline"][-1]["reason"] == "约定时间已到，自动恢复计时"
    assert case["timer"]["kind"] == "warn_resolve"


def test_escalating_a_paused_case_ends_the_pause_first():
    case = accepted_case()
    pause(case, MONDAY_9 + timedelta(hours=1))
    events = transitions.move_up(case, GROUP, POLICY, MONDAY_9 + timedelta(hours=2), reason="超出本级处理能力",
                                 actor=LEAD)
    assert [e["type"] for e in events] == ["case.resumed", "case.escalated"]
    assert case["pause"] is None and case["pauses"][0]["end_reason"] == "moved"
    assert case["level_paused_working_seconds"] == 0.0     # the group's clocks start fresh


def test_resolving_a_paused_case_ends_the_pause():
    case = accepted_case()
    pause(case, MONDAY_9 + timedelta(hours=1))
    events = transitions.resolve(case, LEAD, MONDAY_9 + timedelta(hours=2), "已修好")
    assert [e["type"] for e in events] == ["case.resumed", "case.resolved"]


# -- policy ------------------------------------------------------------------------------------------

def test_the_pause_limits_are_part_of_the_policy_with_defaults_per_tier():
    assert (str(GENERAL.max_total), GENERAL.max_count) == ("3wd", 2)
    assert sla.policy_to_dict(POLICY)["tiers"]["difficult"]["pause"] == {"max_total": "5wd", "max_count": 3}
    older = copy.deepcopy(sla.DEFAULT_POLICY)
    for tier in older["tiers"].values():
        del tier["pause"]          # a policy stored before pausing existed
    assert sla.pause_limits(sla.policy_from_dict(older), "complex") == sla.default_pause("complex")


@pytest.mark.parametrize("field,value,message", [
    ("max_count", 11, "less than or equal to 10"), ("max_count", -1, "greater than or equal to 0"),
    ("max_total", "0wd", "positive"), ("max_total", "3 weeks", "invalid duration"),
])
def test_bad_pause_limits_are_refused_naming_the_field(field, value, message):
    data = copy.deepcopy(sla.DEFAULT_POLICY)
    data["tiers"]["general"]["pause"][field] = value
    with pytest.raises(ValidationError) as refused:
        sla.policy_from_dict(data)
    assert message in str(refused.value.messages["tiers"]["general"]["pause"][field])


# -- figures -----------------------------------------------------------------------------------------

def test_paused_time_is_shown_beside_time_to_solve_and_left_out_of_the_two_day_share():
    case = accepted_case()
    pause(case, MONDAY_9 + timedelta(hours=1))
    pausing.resume(case, LEAD, MONDAY_9 + timedelta(days=1, hours=1), why="holder")   # paused 24 h
    transitions.resolve(case, LEAD, MONDAY_9 + timedelta(days=2, hours=12), "已修好")  # 60 h after opening
    derive(case, MONDAY_9 + timedelta(days=3))
    assert case["time_to_resolve_s"] == 60 * HOUR and case["paused_s"] == 24 * HOUR
    assert case["resolved_within_2d"] == 1 and case["paused_now"] == 0


def test_a_running_pause_counts_up_to_now():
    case = accepted_case()
    pause(case, MONDAY_9)
    derive(case, MONDAY_9 + timedelta(hours=5))
    assert case["paused_s"] == 5 * HOUR and case["paused_now"] == 1
    assert case["deadline"] is None      # not counted as overdue while nothing runs
    assert views.shown(views.summary(case, MONDAY_9 + timedelta(hours=5)), "paused")
