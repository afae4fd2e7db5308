"""Working days, SLA durations and the 0211 policy (shared/domain/workdays.py, services/dispatch/sla.py)."""

import copy
import json
import logging
import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from marshmallow import ValidationError

from services.dispatch import sla
from services.dispatch.sla import (
    DEFAULT_POLICY,
    LevelDeadlines,
    SlaPolicySchema,
    deadlines,
    default_policy,
    next_level,
    next_progress_due,
    policy_from_dict,
    policy_to_dict,
    promise_due,
    tier_for,
)
from shared.domain import workdays
from shared.domain.categories import CATEGORIES, TIERS
from shared.domain.levels import CHAIN_LEVELS as LEVELS
from shared.domain.workdays import Duration, add, add_working_days, is_working_day

SH = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


# --- the calendar facts the cases below rely on (from chinese_calendar itself) -------------


@pytest.mark.parametrize(
    "day, working",
    [
        (date(2026, 9, 20), True),  # Sunday, make-up day for National Day
        (date(2026, 9, 25), False),  # Friday, Mid-Autumn Festival
        (date(2026, 9, 28), True),
        (date(2026, 10, 1), False),
        (date(2026, 10, 7), False),
        (date(2026, 10, 8), True),
        (date(2026, 10, 10), True),  # Saturday, make-up day
        (date(2026, 10, 11), False),
    ],
)
def test_is_working_day_2026_autumn(day, working):
    assert is_working_day(day) is working


# --- add_working_days ----------------------------------------------------------------------


def test_limit_set_on_a_holiday_friday_ends_at_end_of_second_working_day():
    # Fri 2026-09-25 is Mid-Autumn; Sat/Sun off; Mon 28 and Tue 29 are the two working days.
    due = add_working_days(local(2026, 9, 25, 10), 2)
    assert due == datetime(2026, 9, 29, 16, tzinfo=UTC)
    assert due.astimezone(SH) == local(2026, 9, 30, 0)
    assert due.tzinfo is UTC


def test_limit_across_national_day_keeps_time_of_day():
    due = add_working_days(local(2026, 9, 30, 10), 2)
    assert due.astimezone(SH) == local(2026, 10, 9, 10)
    assert due == datetime(2026, 10, 9, 2, tzinfo=UTC)


def test_make_up_saturday_counts_as_working_day():
    assert add_working_days(local(2026, 10, 9, 10), 1).astimezone(SH) == local(2026, 10, 10, 10)


def test_start_on_make_up_saturday_is_a_working_day_start():
    # Sunday 11 is off again, so one working day after Sat 10:00 is Mon 12 10:00.
    assert add_working_days(local(2026, 10, 10, 10), 1).astimezone(SH) == local(2026, 10, 12, 10)


def test_make_up_sunday_counts_as_working_day():
    assert add_working_days(local(2026, 9, 20, 10), 1).astimezone(SH) == local(2026, 9, 21, 10)


def test_weekend_start_counts_from_monday_and_ends_at_midnight():
    # Sat 2026-03-14: count Mon 16 as day 1, deadline is the end of Monday.
    due = add_working_days(local(2026, 3, 14, 10), 1)
    assert due.astimezone(SH) == local(2026, 3, 17, 0)
    assert due == datetime(2026, 3, 16, 16, tzinfo=UTC)


def test_ordinary_weekday_skips_weekend():
    assert add_working_days(local(2026, 3, 13, 15, 30), 1).astimezone(SH) == local(2026, 3, 16, 15, 30)


def test_days_are_counted_in_local_time_not_utc():
    # 2026-09-30 18:00 UTC is already Oct 1 02:00 in Shanghai, a holiday.
    due = add_working_days(datetime(2026, 9, 30, 18, tzinfo=UTC), 1)
    assert due.astimezone(SH) == local(2026, 10, 9, 0)


def test_zero_working_days_on_a_working_day_is_the_start():
    start = local(2026, 9, 30, 10)
    assert add_working_days(start, 0) == start
    assert add_working_days(start, 0).tzinfo is UTC


def test_fraction_is_added_as_share_of_24_hours_after_landing():
    assert add_working_days(local(2026, 9, 30, 10), 1.5).astimezone(SH) == local(2026, 10, 8, 22)
    assert add_working_days(local(2026, 9, 30, 10), 0.25).astimezone(SH) == local(2026, 9, 30, 16)


def test_fraction_on_non_working_start_counts_from_first_working_midnight():
    assert add_working_days(local(2026, 9, 25, 10), 0.5).astimezone(SH) == local(2026, 9, 28, 12)
    assert add_working_days(local(2026, 9, 25, 10), 1.5).astimezone(SH) == local(2026, 9, 29, 12)


def test_more_working_days_never_gives_an_earlier_deadline():
    for start in (local(2026, 9, 25, 10), local(2026, 9, 30, 23), local(2026, 10, 9, 1)):
        dues = [add_working_days(start, n / 4) for n in range(0, 41)]
        assert dues == sorted(dues)
        assert dues[0] >= start


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), float("inf"), "2", True])
def test_bad_working_day_counts_rejected(bad):
    with pytest.raises(ValueError):
        add_working_days(local(2026, 9, 30, 10), bad)


def test_naive_datetime_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_days(datetime(2026, 9, 30, 10), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        add(datetime(2026, 9, 30, 10), Duration(1, "hours"))


# --- fallback outside the package's years --------------------------------------------------


def test_fallback_to_monday_friday_with_one_warning_per_year(monkeypatch, caplog):
    monkeypatch.setattr(workdays, "_warned_years", set())
    with caplog.at_level(logging.WARNING, logger=workdays.__name__):
        assert is_working_day(date(2040, 1, 2)) is True  # Monday
        assert is_working_day(date(2040, 1, 7)) is False  # Saturday
        assert is_working_day(date(2040, 1, 8)) is False  # Sunday
        # Fri 2040-01-06 10:00 + 1 → Mon 2040-01-09 10:00 under Mon–Fri.
        assert add_working_days(local(2040, 1, 6, 10), 1).astimezone(SH) == local(2040, 1, 9, 10)
        # 1999 predates the package; its National Day counts as a plain Friday.
        assert is_working_day(date(1999, 10, 1)) is True
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # The message, not record.args: the phone-masking filter on the root handlers (installed by any
    # earlier test that configured logging) formats the record and clears its args.
    years = [re.search(r"holiday data for (\d+)", r.getMessage()).group(1) for r in warnings]
    assert years == ["2040", "1999"]


# --- Duration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, amount, unit",
    [
        ("2wd", 2.0, "working_days"),
        ("7d", 7.0, "days"),
        ("36h", 36.0, "hours"),
        ("90s", 90.0, "seconds"),
        ("30m", 30.0, "minutes"),
        ("0.25wd", 0.25, "working_days"),
        ("1.5h", 1.5, "hours"),
        ("0s", 0.0, "seconds"),
    ],
)
def test_duration_parse_and_str_round_trip(text, amount, unit):
    duration = Duration.parse(text)
    assert duration == Duration(amount, unit)
    assert str(duration) == text
    assert Duration.parse(str(duration)) == duration


def test_duration_str_never_uses_exponent_notation():
    tiny = Duration(1e-5, "hours")
    assert str(tiny) == "0.00001h"
    assert Duration.parse(str(tiny)) == tiny
    assert str(Duration(2, "days")) == "2d"


def test_duration_parse_tolerates_surrounding_spaces():
    assert Duration.parse(" 2 wd ") == Duration(2, "working_days")


@pytest.mark.parametrize(
    "text", ["", "2", "wd", "-1d", "2w", "1e3s", "2 days", ".5h", "2WD", "1,5h", None, 2]
)
def test_duration_parse_rejects_bad_input(text):
    with pytest.raises(ValueError):
        Duration.parse(text)


@pytest.mark.parametrize(
    "amount, unit",
    [(-1, "days"), (1, "weeks"), (float("inf"), "days"), (float("nan"), "hours"), (True, "days"), ("2", "days")],
)
def test_duration_constructor_rejects_bad_values(amount, unit):
    with pytest.raises(ValueError):
        Duration(amount, unit)


def test_add_calendar_units_is_exact_elapsed_time():
    start = local(2026, 9, 30, 10)
    assert add(start, Duration.parse("36h")) == datetime(2026, 10, 1, 14, tzinfo=UTC)
    assert add(start, Duration.parse("7d")) == datetime(2026, 10, 7, 2, tzinfo=UTC)
    assert add(start, Duration.parse("90s")) == datetime(2026, 9, 30, 2, 1, 30, tzinfo=UTC)
    assert add(start, Duration.parse("30m")) == datetime(2026, 9, 30, 2, 30, tzinfo=UTC)
    assert add(start, Duration.parse("2wd")) == datetime(2026, 10, 9, 2, tzinfo=UTC)


def test_duration_scaled_keeps_unit():
    assert Duration.parse("2wd").scaled(0.75) == Duration(1.5, "working_days")


# --- default policy --------------------------------------------------------------------------


def test_default_table_is_complete():
    policy = default_policy()
    assert tuple(policy.tiers) == TIERS
    assert policy.levels == LEVELS == ("neighbourhood", "group", "area", "village", "township")
    for tier in TIERS:
        assert tuple(policy.tiers[tier].levels) == LEVELS
        for level_policy in policy.tiers[tier].levels.values():
            assert level_policy.warn_at == 0.75
            assert level_policy.accept.amount > 0 and level_policy.resolve.amount > 0
    assert set(policy.category_tiers) == set(CATEGORIES)
    assert set(policy.category_tiers.values()) <= set(TIERS)
    assert len(CATEGORIES) == 10 and CATEGORIES["dispute"] == "矛盾纠纷"


def test_default_promises_follow_0211():
    tiers = default_policy().tiers
    assert str(tiers["instant"].promise) == "0s"
    assert str(tiers["general"].promise) == "2wd"
    assert str(tiers["difficult"].promise) == "5wd"
    assert str(tiers["complex"].promise) == "30d"
    assert str(tiers["complex"].progress_every) == "30d"
    assert [tiers[t].progress_every for t in ("instant", "general", "difficult")] == [None] * 3


@pytest.mark.parametrize("tier", ["general", "difficult"])
def test_village_chain_shares_add_up_to_the_promise(tier):
    tier_policy = default_policy().tiers[tier]
    shares = [tier_policy.levels[level].resolve for level in LEVELS[:-1]]
    assert {share.unit for share in shares} == {"working_days"}
    assert sum(share.amount for share in shares) == tier_policy.promise.amount


def test_accept_always_falls_due_before_resolve():
    policy = default_policy()
    starts = [local(2026, 9, 25, 10), local(2026, 9, 30, 22), local(2026, 10, 10, 9), local(2026, 3, 16, 8)]
    for tier in TIERS:
        for level in LEVELS:
            for start in starts:
                due = deadlines(policy, tier, level, start)
                assert start < due.warn_accept_at < due.accept_due < due.resolve_due
                assert due.warn_resolve_at < due.resolve_due


def _docstring_table_rows(doc: str, header_start: str) -> list[list[str]]:
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_docstring_table_matches_default_policy():
    policy = default_policy()
    rows = _docstring_table_rows(sla.__doc__, "| tier | promise |")
    assert [row[0].split()[0] for row in rows] == list(TIERS)
    for row in rows:
        tier_policy = policy.tiers[row[0].split()[0]]
        assert row[1].split(",")[0] == str(tier_policy.promise)
        expected = [f"{p.accept} / {p.resolve}" for p in tier_policy.levels.values()]
        assert row[2:] == expected
    assert "progress every 30d" in rows[-1][1]


def test_docstring_category_table_matches_default_policy():
    rows = _docstring_table_rows(sla.__doc__, "| category |")
    assert {code: (name, tier) for code, name, tier in rows} == {
        code: (CATEGORIES[code], tier) for code, tier in default_policy().category_tiers.items()
    }


# --- (de)serialisation and validation --------------------------------------------------------


def test_policy_dict_round_trip_is_json_able():
    policy = default_policy()
    data = policy_to_dict(policy)
    assert json.loads(json.dumps(data)) == data
    assert data["tiers"]["general"]["levels"]["neighbourhood"] == {
        "accept": "2h",
        "resolve": "0.25wd",
        "warn_at": 0.75,
    }
    assert data["tiers"]["complex"]["progress_every"] == "30d"
    assert data["levels"] == list(LEVELS)
    assert policy_from_dict(data) == policy


def test_warn_at_and_levels_have_defaults():
    data = copy.deepcopy(DEFAULT_POLICY)
    del data["levels"]
    del data["tiers"]["general"]["levels"]["group"]["warn_at"]
    del data["tiers"]["general"]["progress_every"]
    policy = policy_from_dict(data)
    assert policy.levels == LEVELS
    assert policy.tiers["general"].levels["group"].warn_at == 0.75
    assert policy.tiers["general"].progress_every is None


def _errors(mutate) -> dict:
    data = copy.deepcopy(DEFAULT_POLICY)
    mutate(data)
    with pytest.raises(ValidationError) as caught:
        SlaPolicySchema().load(data)
    return caught.value.messages


def _set(path: str, value):
    def mutate(data):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _delete(path: str):
    def mutate(data):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _dig(messages: dict, path: str):
    node = messages
    for key in path.split("."):
        node = node[key]
    return node


@pytest.mark.parametrize(
    "mutate, error_path, fragment",
    [
        (_set("tiers.urgent", {}), "tiers.urgent", "Unknown field"),
        (_delete("tiers.complex"), "tiers.complex", "Missing data"),
        (_set("tiers.general.levels.street", {}), "tiers.general.levels.street", "Unknown field"),
        (_delete("tiers.difficult.levels.area"), "tiers.difficult.levels.area", "Missing data"),
        (_set("category_tiers.pets", "general"), "category_tiers.pets", "Unknown field"),
        (_delete("category_tiers.water"), "category_tiers.water", "Missing data"),
        (_set("category_tiers.power", "urgent"), "category_tiers.power", "Must be one of"),
        (_set("tiers.general.levels.village.accept", "soon"), "tiers.general.levels.village.accept", "invalid duration"),
        (_set("tiers.general.levels.village.resolve", "0wd"), "tiers.general.levels.village.resolve", "positive"),
        (_set("tiers.general.levels.area.resolve", "-1d"), "tiers.general.levels.area.resolve", "invalid duration"),
        (_set("tiers.general.levels.area.resolve", 2), "tiers.general.levels.area.resolve", "must be a string"),
        (_set("tiers.general.levels.area.resolve", "400d"), "tiers.general.levels.area.resolve", "one year"),
        (_set("tiers.difficult.levels.township.resolve", "300wd"), "tiers.difficult.levels.township.resolve", "250wd"),
        (_set("tiers.general.levels.group.warn_at", 1.0), "tiers.general.levels.group.warn_at", "less than 1"),
        (_set("tiers.general.levels.group.warn_at", 0), "tiers.general.levels.group.warn_at", "greater than 0"),
        (_set("tiers.general.promise", "0wd"), "tiers.general.promise", "positive"),
        (_set("tiers.complex.progress_every", None), "tiers.complex.progress_every", "may not be null"),
        (_set("tiers.general.progress_every", "0d"), "tiers.general.progress_every", "positive"),
        (_set("levels", ["neighbourhood", "village"]), "levels", "levels are fixed"),
        (_set("extra", 1), "extra", "Unknown field"),
    ],
)
def test_validation_errors_name_the_field(mutate, error_path, fragment):
    messages = _errors(mutate)
    errors = _dig(messages, error_path)
    assert any(fragment in error for error in errors), errors


def test_instant_tier_may_promise_zero_but_not_others():
    assert policy_from_dict(copy.deepcopy(DEFAULT_POLICY)).tiers["instant"].promise.is_zero
    messages = _errors(_set("tiers.difficult.promise", "0s"))
    assert _dig(messages, "tiers.difficult.promise") == ["duration must be positive, got '0s'"]


def test_several_errors_reported_together():
    def mutate(data):
        data["tiers"]["general"]["levels"]["village"]["accept"] = "x"
        data["category_tiers"]["road"] = "never"

    messages = _errors(mutate)
    assert set(messages) == {"tiers", "category_tiers"}
    assert set(messages["tiers"]["general"]["levels"]["village"]) == {"accept"}


# --- deadlines and queries -------------------------------------------------------------------


def test_deadlines_for_general_neighbourhood():
    due = deadlines(default_policy(), "general", "neighbourhood", local(2026, 9, 30, 10))
    assert due == LevelDeadlines(
        accept_due=datetime(2026, 9, 30, 4, tzinfo=UTC),  # 2h
        resolve_due=datetime(2026, 9, 30, 8, tzinfo=UTC),  # 0.25wd = 6h on a working day
        warn_accept_at=datetime(2026, 9, 30, 3, 30, tzinfo=UTC),  # 0.75 × 2h
        warn_resolve_at=datetime(2026, 9, 30, 6, 30, tzinfo=UTC),  # 0.1875wd = 4h30
    )


def test_deadlines_for_difficult_village_across_national_day():
    due = deadlines(default_policy(), "difficult", "village", local(2026, 9, 30, 10))
    assert due.accept_due.astimezone(SH) == local(2026, 9, 30, 18)  # 8h
    assert due.warn_accept_at.astimezone(SH) == local(2026, 9, 30, 16)
    # 3wd: Oct 8, Oct 9, Sat Oct 10 (make-up day).
    assert due.resolve_due.astimezone(SH) == local(2026, 10, 10, 10)
    # 2.25wd: Oct 9 10:00 plus 6h — not in the middle of the holiday.
    assert due.warn_resolve_at.astimezone(SH) == local(2026, 10, 9, 16)


def test_deadlines_use_edited_warn_at():
    data = copy.deepcopy(DEFAULT_POLICY)
    data["tiers"]["general"]["levels"]["area"]["warn_at"] = 0.5
    due = deadlines(policy_from_dict(data), "general", "area", local(2026, 3, 16, 9))
    assert due.warn_accept_at.astimezone(SH) == local(2026, 3, 16, 11)  # half of 4h
    assert due.warn_resolve_at.astimezone(SH) == local(2026, 3, 16, 15)  # 0.25wd
    assert due.resolve_due.astimezone(SH) == local(2026, 3, 16, 21)  # 0.5wd


def test_deadlines_reject_unknown_tier_and_level():
    policy = default_policy()
    with pytest.raises(ValueError, match="unknown SLA tier 'urgent'"):
        deadlines(policy, "urgent", "group", local(2026, 3, 16, 9))
    with pytest.raises(ValueError, match="no SLA for level 'department'"):
        deadlines(policy, "general", "department", local(2026, 3, 16, 9))


def test_promise_due_per_tier():
    policy = default_policy()
    reported = local(2026, 9, 25, 10)
    assert promise_due(policy, "instant", reported) == reported
    assert promise_due(policy, "general", reported).astimezone(SH) == local(2026, 9, 30, 0)
    # 5wd from the holiday: Sep 28, 29, 30, Oct 8, 9 → end of Fri Oct 9.
    assert promise_due(policy, "difficult", reported).astimezone(SH) == local(2026, 10, 10, 0)
    assert promise_due(policy, "complex", reported) == reported + timedelta(days=30)


def test_next_progress_due_only_for_complex():
    policy = default_policy()
    last = local(2026, 10, 20, 9)
    assert next_progress_due(policy, "complex", last).astimezone(SH) == local(2026, 11, 19, 9)
    assert next_progress_due(policy, "general", last) is None


def test_next_level_walks_the_chain():
    chain = ["neighbourhood"]
    while (following := next_level(chain[-1])) is not None:
        chain.append(following)
    assert chain == ["neighbourhood", "group", "area", "village", "township", "department"]
    with pytest.raises(ValueError, match="unknown level 'city'"):
        next_level("city")


@pytest.mark.parametrize(
    "category, tier",
    [("policy", "instant"), ("environment", "general"), ("hazard", "general"), ("dispute", "difficult"), ("other", "general")],
)
def test_tier_for_default_categories(category, tier):
    assert tier_for(default_policy(), category) == tier


def test_tier_for_unknown_category():
    with pytest.raises(ValueError, match="unknown category 'pets'"):
        tier_for(default_policy(), "pets")


def test_default_policy_is_a_fresh_copy():
    first = default_policy()
    first.category_tiers["road"] = "complex"
    assert default_policy().category_tiers["road"] == "difficult"
    assert re.fullmatch(r"\d+(\.\d+)?(wd|s|m|h|d)", DEFAULT_POLICY["tiers"]["general"]["promise"])


def test_deadlines_remembered_per_instant_follow_the_process_zone():
    """A level's deadlines are worked out once per (level policy, instant, zone): a process set to
    another zone (SANZHANG_TIMEZONE) must not get the deadlines of the zone asked for before."""
    from shared.domain import localtime

    policy = sla.default_policy()
    # Friday 17:00 UTC: already Saturday 01:00 in Beijing (not a working day), still Friday in London.
    at = datetime(2026, 11, 6, 17, 0, tzinfo=timezone.utc)
    previous = localtime.local_zone()
    try:
        localtime.configure("Asia/Shanghai")
        shanghai = sla.deadlines(policy, "general", "neighbourhood", at)
        assert sla.deadlines(policy, "general", "neighbourhood", at) is shanghai  # remembered
        localtime.configure("Europe/London")
        london = sla.deadlines(policy, "general", "neighbourhood", at)
        assert london == sla.deadlines(policy, "general", "neighbourhood", at, tz="Europe/London")
        assert shanghai == sla.deadlines(policy, "general", "neighbourhood", at, tz="Asia/Shanghai")
        assert london.resolve_due != shanghai.resolve_due  # 0.25wd: the working day depends on the zone
    finally:
        localtime.configure(previous.key)
