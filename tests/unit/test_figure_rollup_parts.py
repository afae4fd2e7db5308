"""The rollups' pure parts (Beijing days, minute histograms, nearest rank, merging days) and the
write path's behaviour when the rollups cannot be written (tests/integration/test_figure_rollups.py
checks whole histories against the scan on every adapter)."""
from __future__ import annotations

from datetime import datetime, timezone

from services.dispatch.supervision.facts import CaseFacts
from services.dispatch.supervision.figures import with_rates
from services.dispatch.supervision.rollups import (day_bounds, day_of, day_rows, merge, percentile, unpack,
                                                   week_key, whole_days)
from shared.clock import FakeClock
from shared.storage import Metric, StoreUnavailable
from tests.support.fakes.memory_store import MemoryStore


def test_days_are_beijing_days():
    assert day_of("2026-11-01T15:59:59.999999Z") == "2026-11-01"
    assert day_of("2026-11-01T16:00:00.000000Z") == "2026-11-02"  # midnight in Beijing
    assert day_bounds("2026-11-02") == ("2026-11-01T16:00:00.000000Z", "2026-11-02T16:00:00.000000Z")
    assert whole_days("2026-10-31T16:00:00.000000Z", "2026-11-30T16:00:00.000000Z") == ("2026-11-01", "2026-12-01")
    assert whole_days("2026-10-31T16:00:00.000000Z", "2026-11-02T01:00:00.000000Z") is None  # part of a day
    assert week_key("2026-11-08") == ("2026-11-02",)  # a Sunday belongs to Monday's week


def test_the_histograms_nearest_rank_is_the_ports_at_minute_precision():
    store = MemoryStore()
    coll = store.collection("v", columns=["secs"])
    values = [59, 61, 125, 3600, 3659, 3661, 7201, 90000, 90059, 172800]
    for i, v in enumerate(values):
        coll.insert({"_id": str(i), "secs": v})
    days = [sorted(v // 60 for v in values[:4]), [], sorted(v // 60 for v in values[4:])]  # three days' minutes
    for permille in (1, 100, 500, 900, 990, 1000):
        [row] = coll.aggregate([], {"p": Metric("percentile", "secs", q=permille / 1000)})
        assert percentile(days, permille) == row["p"] // 60 * 60, permille
    assert percentile([[], []], 500) is None
    many = [sorted(v // 60 for v in values * 4)] * 10  # 40 values per run: the bisection
    for permille in (1, 500, 900, 1000):
        [row] = coll.aggregate([], {"p": Metric("percentile", "secs", q=permille / 1000)})
        assert percentile(many, permille) == row["p"] // 60 * 60, permille


def fact(**kw) -> dict:
    base = {"n": 1, "township": "430382100", "village_id": "v1", "category": "road", "accepted_on_time": None,
            "time_to_accept_s": None, "time_to_resolve_s": None}
    return {**base, **kw}


def test_a_day_rolls_up_counts_sums_and_histograms_and_days_merge_into_periods():
    rows = day_rows("cases", [fact(accepted_on_time=1, time_to_accept_s=1830, resolved=1, time_to_resolve_s=7300),
                              fact(n=2, village_id="v2", accepted_on_time=0, time_to_accept_s=40, breach_count=1),
                              fact()])
    township = rows["township"]  # a day as columns, one entry per group (here one township)
    assert township["key"] == [["430382100"]]
    sums = township["sums"]
    assert (sums["received"], sums["accept_decided"], sums["accepted_on_time"], sums["breaches"],
            sums["resolved"]) == ([4], [3], [1], [2], [1])
    assert [list(unpack(t)) for t in township["acc"]] == [[0, 0, 30]] and list(unpack(township["res"][0])) == [121]
    assert rows["village"]["key"] == [["v1"], ["v2"]] and rows["village"]["sums"]["received"] == [2, 2]
    docs = [{"day": "2026-11-02", "rows": rows["township"]}, {"day": "2026-11-08", "rows": rows["township"]},
            {"day": "2026-11-09", "rows": rows["township"]}]
    [merged] = merge(docs, ["township"])
    assert (merged["received"], merged["accept_median_s"], merged["accept_p90_s"], merged["resolve_median_s"]) == \
        (12, 0, 1800, 7260)
    weeks = {r["week"]: r["received"] for r in merge(docs, ["week"], regroup=week_key)}
    assert weeks == {"2026-11-02": 8, "2026-11-09": 4}


def test_medians_are_reported_in_whole_minutes():
    row = with_rates({"accepted_on_time": 1, "accept_decided": 1, "resolved": 0, "received": 1, "satisfied": 0,
                      "rated": 0, "resolved_within_2d": 0, "accept_median_s": 1859, "accept_p90_s": None,
                      "resolve_median_s": 60, "resolve_p90_s": 59})
    assert (row["accept_median_s"], row["accept_p90_s"], row["resolve_median_s"], row["resolve_p90_s"]) == \
        (1800, None, 60, 0)


class Unreachable:
    def touch_cases(self, cases):
        raise StoreUnavailable("no primary")


def test_a_case_write_stands_when_its_rollups_cannot_be_written():
    clock = FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc))
    cases = CaseFacts(MemoryStore().collection("cases"), clock)
    cases.rollups = Unreachable()  # the projector recomputes the day when the case's event comes back
    doc = {"_id": "c1", "township": "430382100", "created_at": "2026-11-02T01:00:00.000000Z", "status": "assigned",
           "step": 1, "level": "neighbourhood", "unit_id": "u1", "timeline": []}
    cases.add(doc)
    stored = cases.mutate("c1", lambda c: c.update(status="accepted", accepted_at="2026-11-02T01:30:00.000000Z"))
    assert stored["accepted_on_time"] == 1 and cases.get("c1")["time_to_accept_s"] == 1800


class Recording:
    """Remembers each mark with the statuses the store held when it was made."""

    def __init__(self, collection):
        self.collection, self.marks = collection, []

    def touch_cases(self, cases):
        self.marks.append([(c["_id"], self.collection.get(c["_id"])["status"]) for c in cases])


def test_a_claims_cases_are_marked_once_after_the_claims_write():
    clock = FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc))
    collection = MemoryStore().collection("cases")
    cases = CaseFacts(collection, clock)
    for i in range(3):
        cases.add({"_id": f"c{i}", "township": "430382100", "created_at": "2026-11-02T01:00:00.000000Z",
                   "status": "assigned", "step": 1, "level": "neighbourhood", "unit_id": "u1", "timeline": []})
    cases.rollups = Recording(collection)
    claimed = [collection.get(f"c{i}") for i in range(3)]
    failed = cases.mutate_claimed(claimed, lambda doc: cases.mutate(doc["_id"], lambda c: c.update(
        status="accepted", accepted_at="2026-11-02T01:30:00.000000Z")))
    assert failed == {}
    # one touch for the claim, made when every change was stored (a recomputation then reads them)
    assert cases.rollups.marks == [[("c0", "accepted"), ("c1", "accepted"), ("c2", "accepted")]]
