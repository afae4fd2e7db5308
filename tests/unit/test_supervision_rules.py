"""Supervision's pure rules: the cards a quarter's figures earn (each condition of each card), quarter and
day bounds in local time, the 三率 from counts, the rule set's validation (正负面清单) and its storage on
the in-memory store fake."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
from marshmallow import ValidationError

from services.dispatch.supervision.cards import CHOICES, propose, quarter_bounds
from services.dispatch.supervision.figures import local_day, metrics, quarter_range, with_rates
from services.dispatch.supervision.rules import CARDS, DEFAULT_RULES, NEGATIVE, POSITIVE, Rules, RuleSetIn
from tests.support.fakes.memory_store import MemoryStore

THRESHOLDS = DEFAULT_RULES["cards"]
CLEAN = {"points": 5, "rated": 0, "satisfaction_rate": None, "breaches": 0, "overdue_visits": 0}


# -- cards ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("points,card", [(0, "none"), (-0.5, "blue"), (-5, "blue"), (-5.5, "yellow"),
                                         (-15, "yellow"), (-15.5, "red")])
def test_points_below_each_threshold_earn_its_card(points, card):
    assert propose({**CLEAN, "points": points}, THRESHOLDS)[0] == card


@pytest.mark.parametrize("breaches,card", [(1, "none"), (2, "blue"), (4, "blue"), (5, "yellow"), (9, "yellow"),
                                           (10, "red")])
def test_breaches_at_least_each_threshold_earn_its_card(breaches, card):
    assert propose({**CLEAN, "breaches": breaches}, THRESHOLDS)[0] == card


@pytest.mark.parametrize("overdue,card", [(1, "none"), (2, "blue"), (4, "yellow"), (7, "yellow"), (8, "red")])
def test_overdue_visits_earn_cards(overdue, card):
    assert propose({**CLEAN, "overdue_visits": overdue}, THRESHOLDS)[0] == card


@pytest.mark.parametrize("rate,card", [(0.9, "none"), (0.85, "none"), (0.84, "blue"), (0.69, "yellow"),
                                       (0.5, "yellow"), (0.49, "red"), (0.0, "red")])
def test_satisfaction_below_each_threshold_earns_its_card(rate, card):
    assert propose({**CLEAN, "rated": 3, "satisfaction_rate": rate}, THRESHOLDS)[0] == card


@pytest.mark.parametrize("rated", [0, 1, 2])
def test_satisfaction_needs_enough_ratings_behind_it(rated):
    assert propose({**CLEAN, "rated": rated, "satisfaction_rate": 0.0}, THRESHOLDS) == ("none", [])


def test_the_most_severe_card_wins_and_lists_every_reason_of_that_card():
    card, reasons = propose({**CLEAN, "points": -20, "breaches": 12, "overdue_visits": 9,
                             "rated": 4, "satisfaction_rate": 0.25}, THRESHOLDS)
    assert card == "red"
    assert reasons == ["季度积分-20低于-15", "满意率25%低于50%", "超时12次（≥10）", "走访超期9户次（≥8）"]


def test_a_card_whose_conditions_are_all_off_is_never_given():
    thresholds = copy.deepcopy(THRESHOLDS)
    thresholds["red"] = {k: None for k in thresholds["red"]}
    assert propose({**CLEAN, "breaches": 50}, thresholds)[0] == "yellow"
    assert propose({**CLEAN, "breaches": 50}, {})[0] == "none"


def test_the_card_choices_are_the_cards_and_none():
    assert CHOICES == ("red", "yellow", "blue", "none") and CARDS == ("red", "yellow", "blue")


@pytest.mark.parametrize("quarter,start,end", [
    ("2026Q1", "2025-12-31T16:00:00.000000Z", "2026-03-31T16:00:00.000000Z"),
    ("2026Q2", "2026-03-31T16:00:00.000000Z", "2026-06-30T16:00:00.000000Z"),
    ("2026Q3", "2026-06-30T16:00:00.000000Z", "2026-09-30T16:00:00.000000Z"),
    ("2026Q4", "2026-09-30T16:00:00.000000Z", "2026-12-31T16:00:00.000000Z"),
])
def test_a_quarter_runs_from_local_midnight_to_local_midnight(quarter, start, end):
    assert quarter_bounds(quarter) == (start, end)


@pytest.mark.parametrize("now,start_month,end_month", [
    (datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc), 1, 4),
    (datetime(2026, 3, 31, 16, 0, tzinfo=timezone.utc), 4, 7),   # 1 April 00:00 in China
    (datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc), 10, 1),
    (datetime(2026, 12, 31, 15, 59, tzinfo=timezone.utc), 10, 1),
])
def test_the_current_quarter_is_read_in_local_time(now, start_month, end_month):
    start, end = quarter_range(now)
    assert (start.month, start.day, start.hour) == (start_month, 1, 0)
    assert (end.month, end.day) == (end_month, 1)
    assert end.year == start.year + (1 if start_month == 10 else 0)


def test_a_local_date_is_the_utc_time_of_its_local_midnight_and_an_end_date_includes_its_day():
    assert local_day("2026-11-01") == "2026-10-31T16:00:00.000000Z"
    assert local_day("2026-11-30", end=True) == "2026-11-30T16:00:00.000000Z"
    assert local_day("2026-11-02T09:00:00+08:00") == "2026-11-02T01:00:00.000000Z"


def test_rates_come_from_counts_and_are_none_without_a_denominator():
    row = with_rates({"accepted_on_time": 3, "accept_decided": 4, "resolved": 2, "received": 5, "satisfied": 1,
                      "rated": 3, "resolved_within_2d": 1})
    assert (row["response_rate"], row["resolve_rate"], row["satisfaction_rate"], row["within_2d_rate"]) == \
        (0.75, 0.4, 0.3333, 0.2)
    empty = with_rates({"accepted_on_time": 0, "accept_decided": 0, "resolved": 0, "received": 0, "satisfied": 0,
                        "rated": 0, "resolved_within_2d": 0})
    assert {empty[k] for k in ("response_rate", "resolve_rate", "satisfaction_rate", "within_2d_rate")} == {None}


def test_overdue_now_counts_deadlines_before_the_given_time_and_stints_add_their_own_figures():
    now = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)
    m = metrics(now)
    assert m["overdue_now"].lt == "2026-11-02T01:00:00.000000Z" and m["accept_median_s"].q == 0.5
    assert "breached_away" not in m and {"breached_away", "supervisions"} <= set(metrics(now, stints=True))


# -- the rule set ---------------------------------------------------------------------------------

def rules_text(**over) -> dict:
    text = copy.deepcopy(DEFAULT_RULES)
    text.update(over)
    return text


def test_the_default_rule_set_is_valid_and_lists_every_detectable_fact():
    loaded = RuleSetIn().load(rules_text())
    assert [r["code"] for r in loaded["positive"]] == list(POSITIVE)
    assert [r["code"] for r in loaded["negative"]] == list(NEGATIVE)
    assert all(r["points"] > 0 for r in loaded["positive"]) and all(r["points"] < 0 for r in loaded["negative"])


@pytest.mark.parametrize("side,rule,field,message", [
    ("positive", {"code": "made_up", "name": "自创", "points": 1}, "code", "未知条目"),
    ("negative", {"code": "accept_on_time", "name": "按时接单", "points": -1}, "code", "未知条目"),
    ("positive", {"code": "accept_on_time", "name": "按时接单", "points": -1}, "points", "正面清单须为正分"),
    ("negative", {"code": "breach_accept", "name": "超时未接单", "points": 2}, "points", "负面清单须为负分"),
    ("positive", {"code": "accept_on_time", "name": "按时接单", "points": 0}, "points", "须为正分"),
])
def test_a_wrong_rule_is_refused_naming_its_side_index_and_field(side, rule, field, message):
    text = rules_text()
    text[side] = [rule]
    with pytest.raises(ValidationError) as err:
        RuleSetIn().load(text)
    assert message in err.value.messages[side][0][field][0]


def test_a_rule_listed_twice_is_refused():
    text = rules_text()
    text["positive"] = [text["positive"][0], dict(text["positive"][0])]
    with pytest.raises(ValidationError) as err:
        RuleSetIn().load(text)
    assert err.value.messages["positive"][1]["code"] == ["条目重复"]


@pytest.mark.parametrize("mutate,path", [
    (lambda t: t.pop("cards"), ("cards",)),
    (lambda t: t["cards"].pop("yellow"), ("cards", "yellow")),
    (lambda t: t["cards"]["red"].update(satisfaction_below=1.5), ("cards", "red", "satisfaction_below")),
    (lambda t: t["cards"]["blue"].update(min_rated=0), ("cards", "blue", "min_rated")),
    (lambda t: t["cards"]["blue"].update(breaches_at_least=0), ("cards", "blue", "breaches_at_least")),
    (lambda t: t.update(supervision_answer_hours=0), ("supervision_answer_hours",)),
    (lambda t: t.update(supervision_answer_hours=24 * 31), ("supervision_answer_hours",)),
    (lambda t: t.update(satisfied_min_score=6), ("satisfied_min_score",)),
    (lambda t: t.update(extra=1), ("extra",)),
    (lambda t: t["positive"][0].update(points=101), ("positive", 0, "points")),
    (lambda t: t["positive"][0].update(name=""), ("positive", 0, "name")),
    (lambda t: t["positive"][0].update(name="长" * 41), ("positive", 0, "name")),
])
def test_rule_set_validation_names_the_field(mutate, path):
    text = rules_text()
    mutate(text)
    with pytest.raises(ValidationError) as err:
        RuleSetIn().load(text)
    node = err.value.messages
    for key in path:
        node = node[key]
    assert node


def test_a_township_without_a_rule_set_uses_the_defaults_and_a_put_one_is_read_back():
    rules = Rules(MemoryStore())
    got = rules.get("430382100")
    assert got["is_default"] and got["changed_by"] is None and got["cards"] == THRESHOLDS
    mine = RuleSetIn().load(rules_text(positive=[{"code": "resolve_on_time", "name": "按时办好", "points": 5}]))
    stored = rules.put("430382100", mine, actor="staff:王")
    assert not stored["is_default"] and stored["changed_by"] == "staff:王"
    assert rules.points("430382100", "resolve_on_time") == ("按时办好", 5)
    assert rules.points("430382100", "accept_on_time") is None  # left out: it earns nothing
    assert rules.points("430382100", "breach_accept") == ("超时未接单", -2)
    assert rules.get("430382101")["is_default"]  # tenants are walls


def test_reading_the_defaults_never_hands_out_the_shared_table():
    rules = Rules(MemoryStore())
    rules.get("430382100")["cards"]["red"]["points_below"] = 99
    assert DEFAULT_RULES["cards"]["red"]["points_below"] == -15
