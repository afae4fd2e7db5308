"""The storage port's aggregate operation, on every adapter (the `store` fixture of
tests/integration/conftest.py): grouped
counts, conditional counts, sums, min/max/avg and nearest-rank percentiles over declared columns,
filtered by indexed fields and a time range."""
from __future__ import annotations

import pytest

from shared.storage import Index, Metric, StorageError, UndeclaredField

INDEXES = [Index.on("township", "at"), Index.on("status")]
COLUMNS = ["level", "ok", "secs", "deadline"]


@pytest.fixture
def facts(store):  # noqa: F811
    coll = store.collection("facts", INDEXES, columns=COLUMNS)
    rows = [
        # township, at, level, ok, secs, deadline
        ("430382100", "2026-11-01", "neighbourhood", 1, 10, "2026-11-05"),
        ("430382100", "2026-11-02", "neighbourhood", 0, 20, None),
        ("430382100", "2026-11-03", "neighbourhood", 1, 30, "2026-11-09"),
        ("430382100", "2026-11-04", "neighbourhood", 1, None, "2026-11-02"),
        ("430382100", "2026-11-05", "group", 0, 50, "2026-11-01"),
        ("430382100", "2026-11-06", "group", None, 60, None),
        ("430382101", "2026-11-02", "group", 1, 70, None),
        ("430382100", "2026-12-01", "neighbourhood", 1, 1000, None),  # outside the range below
    ]
    for i, (t, at, level, ok, secs, deadline) in enumerate(rows):
        coll.insert({"_id": f"f{i}", "township": t, "at": at, "status": "open", "level": level, "ok": ok,
                     "secs": secs, "deadline": deadline, "unrelated": i})
    return coll


METRICS = {"n": Metric.count(), "oks": Metric.sum("ok"), "with_secs": Metric.count("secs"),
           "late": Metric.count("deadline", lt="2026-11-06"), "lo": Metric("min", "secs"),
           "hi": Metric("max", "secs"), "mean": Metric("avg", "secs"),
           "median": Metric.percentile("secs", 0.5), "p90": Metric.percentile("secs", 0.9)}
NOVEMBER = {"township": "430382100", "at": {"$gte": "2026-11-01", "$lt": "2026-12-01"}}


def test_grouped_counts_sums_and_percentiles(facts):
    rows = {r["level"]: r for r in facts.aggregate(["level"], METRICS, NOVEMBER)}
    assert rows.keys() == {"neighbourhood", "group"}
    hood = rows["neighbourhood"]
    # secs 10, 20, 30 (one null): median = rank ceil(1.5)=2 → 20; p90 = rank ceil(2.7)=3 → 30
    assert (hood["n"], hood["oks"], hood["with_secs"], hood["late"]) == (4, 3, 3, 2)
    assert (hood["lo"], hood["hi"], hood["median"], hood["p90"]) == (10, 30, 20, 30)
    assert hood["mean"] == pytest.approx(20.0)
    group = rows["group"]
    assert (group["n"], group["oks"], group["late"], group["median"], group["p90"]) == (2, 0, 1, 50, 60)


def test_percentiles_use_nearest_rank_without_float_drift(store):  # noqa: F811
    coll = store.collection("ranks", [Index.on("township")], columns=["v"])
    for i in range(10):
        coll.insert({"_id": str(i), "township": "t", "v": i + 1})
    [row] = coll.aggregate([], {"p90": Metric.percentile("v", 0.9), "p50": Metric.percentile("v", 0.5),
                                "p100": Metric.percentile("v", 1.0), "p1": Metric.percentile("v", 0.01)})
    assert (row["p90"], row["p50"], row["p100"], row["p1"]) == (9, 5, 10, 1)  # 0.9·10 is 9, not 10


def test_no_grouping_gives_one_row_even_when_nothing_matches(facts):
    [row] = facts.aggregate([], METRICS, {"township": "999999999"})
    assert row["n"] == 0 and row["oks"] == 0 and row["late"] == 0
    assert row["median"] is None and row["lo"] is None
    [row] = facts.aggregate([], {"n": Metric.count(), "p": Metric.percentile("secs", 0.5)}, NOVEMBER)
    assert row == {"n": 6, "p": 30}  # 10 20 30 50 60 → rank 3


def test_grouping_by_two_columns_and_percentile_only(facts):
    rows = facts.aggregate(["township", "level"], {"p": Metric.percentile("secs", 0.5)})
    got = {(r["township"], r["level"]): r["p"] for r in rows}
    assert got == {("430382100", "neighbourhood"): 20, ("430382100", "group"): 50, ("430382101", "group"): 70}


def test_aggregate_is_limited_to_declared_columns_and_indexed_filters(facts):
    with pytest.raises(UndeclaredField):
        facts.aggregate(["unrelated"], {"n": Metric.count()})
    with pytest.raises(UndeclaredField):
        facts.aggregate([], {"s": Metric.sum("unrelated")})
    with pytest.raises(UndeclaredField):
        facts.aggregate([], {"n": Metric.count()}, {"level": "group"})  # a column, not an index
    with pytest.raises(UndeclaredField):
        facts.find({"ok": 1})
    with pytest.raises(StorageError):
        facts.aggregate([], {"x": Metric("median", "secs")})
    with pytest.raises(StorageError):
        facts.aggregate([], {"x": Metric.percentile("secs", 0)})


def test_declared_columns_are_kept_through_replace_and_upsert(facts):
    doc = facts.get("f0")
    facts.replace({**doc, "level": "area"}, doc["version"])
    facts.upsert({**facts.get("f1"), "level": "area", "ok": 1})
    rows = {r["level"]: r["n"] for r in facts.aggregate(["level"], {"n": Metric.count()}, NOVEMBER)}
    assert rows["area"] == 2


def test_sqlite_adds_declared_columns_to_an_existing_table(tmp_path):
    from shared.storage.sqlite import SQLiteStore

    path = tmp_path / "upgrade.db"
    SQLiteStore(path).collection("facts", [Index.on("township")]).insert({"_id": "a", "township": "t", "ok": 1})
    upgraded = SQLiteStore(path).collection("facts", [Index.on("township")], columns=["ok"])
    assert upgraded.aggregate([], {"s": Metric.sum("ok")}, {"township": "t"}) == [{"s": 1}]
