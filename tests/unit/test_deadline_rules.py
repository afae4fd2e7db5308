"""Deadline invariants over the whole 0211 default policy: for every tier, level and a spread of start
times (a weekday morning, a Friday evening, a weekend, the eve of National Day, a make-up Saturday), the
warnings come before the deadlines they warn of, acceptance before resolution, nothing before the start, and
a later start never gives an earlier deadline."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.dispatch import sla
from shared.domain.workdays import Duration, add, is_working_day

POLICY = sla.default_policy()
UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
STARTS = {
    "monday_9am": datetime(2026, 11, 2, 1, 0, tzinfo=UTC),
    "friday_6pm": datetime(2026, 11, 6, 10, 0, tzinfo=UTC),
    "saturday_noon": datetime(2026, 11, 7, 4, 0, tzinfo=UTC),
    "national_day_eve": datetime(2026, 9, 30, 12, 0, tzinfo=UTC),
    "local_midnight": datetime(2026, 11, 3, 16, 0, tzinfo=UTC),
}
CASES = [(tier, level, start) for tier in POLICY.tiers for level in POLICY.levels for start in STARTS]


@pytest.mark.parametrize("tier,level,start", CASES)
def test_warnings_come_before_deadlines_and_acceptance_before_resolution(tier, level, start):
    at = STARTS[start]
    d = sla.deadlines(POLICY, tier, level, at)
    assert at <= d.warn_accept_at <= d.accept_due
    assert at <= d.warn_resolve_at <= d.resolve_due
    assert d.accept_due <= d.resolve_due


@pytest.mark.parametrize("tier,level", [(t, lv) for t in POLICY.tiers for lv in POLICY.levels])
def test_a_later_assignment_never_falls_due_earlier(tier, level):
    base = STARTS["friday_6pm"]
    previous = sla.deadlines(POLICY, tier, level, base)
    for hours in (1, 6, 18, 30, 54, 80):
        later = sla.deadlines(POLICY, tier, level, base + timedelta(hours=hours))
        assert later.accept_due >= previous.accept_due and later.resolve_due >= previous.resolve_due
        previous = later


@pytest.mark.parametrize("tier", list(POLICY.tiers))
@pytest.mark.parametrize("start", list(STARTS))
def test_the_promise_is_never_before_the_report(tier, start):
    assert sla.promise_due(POLICY, tier, STARTS[start]) >= STARTS[start]


@pytest.mark.parametrize("amount", [1, 2, 3, 5, 10])
@pytest.mark.parametrize("start", list(STARTS))
def test_whole_working_days_land_on_a_working_day(amount, start):
    """From a working day: the same local time on a working day. From a day off: the midnight that
    closes a working day."""
    local_start = STARTS[start].astimezone(SHANGHAI)
    due = add(STARTS[start], Duration(amount, "working_days")).astimezone(SHANGHAI)
    if is_working_day(local_start.date()):
        assert is_working_day(due.date()) and due.timetz() == local_start.timetz()
    else:
        assert (due.hour, due.minute) == (0, 0) and is_working_day((due - timedelta(days=1)).date())


@pytest.mark.parametrize("unit,seconds", [("seconds", 1), ("minutes", 60), ("hours", 3600), ("days", 86400)])
@pytest.mark.parametrize("start", list(STARTS))
def test_calendar_units_ignore_the_calendar_of_working_days(unit, seconds, start):
    assert add(STARTS[start], Duration(3, unit)) - STARTS[start] == timedelta(seconds=3 * seconds)
