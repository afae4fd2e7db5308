"""The SQLite adapter's writers under concurrency (issue 16): group commit at synchronous=FULL,
writers of several processes queued on a file lock, partial indexes on mostly-empty fields."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from shared.storage import DuplicateKey, Index, VersionConflict
from shared.storage.sqlite import SQLiteStore

INDEXES = [Index.on("code", unique=True), Index.on("township", "cell", present="cell")]


def _hammer(coll, worker: int, outcomes: dict, lock: threading.Lock) -> None:
    for i in range(40):
        # every worker inserts the shared codes too: exactly one insert of each may win
        for doc in ({"_id": f"w{worker}-{i}", "code": f"w{worker}-{i}", "township": "t", "cell": None},
                    {"_id": f"shared-{i}-{worker}", "code": f"shared-{i}", "township": "t", "cell": f"c{i % 3}"}):
            try:
                coll.insert(doc)
                result = "stored"
            except DuplicateKey:
                result = "duplicate"
            with lock:
                outcomes[doc["_id"]] = result


@pytest.mark.parametrize("sync", ["FULL", "NORMAL"])
def test_concurrent_inserts_each_stored_once_and_a_duplicate_fails_alone(tmp_path, sync):
    store = SQLiteStore(tmp_path / "w.db", synchronous=sync)
    coll = store.collection("things", INDEXES)
    outcomes: dict[str, str] = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=_hammer, args=(coll, w, outcomes, lock)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = {d["_id"] for d in coll.find()}
    assert stored == {k for k, v in outcomes.items() if v == "stored"}
    assert all(outcomes[f"w{w}-{i}"] == "stored" for w in range(8) for i in range(40))
    for i in range(40):  # one winner per shared code, the other seven refused
        assert sum(outcomes[f"shared-{i}-{w}"] == "stored" for w in range(8)) == 1
    # what was acknowledged is durable in the file: a fresh connection sees it
    fresh = sqlite3.connect(tmp_path / "w.db")
    assert fresh.execute("SELECT COUNT(*) FROM c_things").fetchone()[0] == len(stored) == 8 * 40 + 40


def test_compare_and_set_still_detects_a_lost_race_with_group_commit(tmp_path):
    coll = SQLiteStore(tmp_path / "w.db", synchronous="FULL").collection("things", INDEXES)
    first = coll.insert({"_id": "a", "code": "a", "township": "t", "cell": None})
    coll.replace({**first, "n": 1}, expected_version=1, previous=first)
    with pytest.raises(VersionConflict):
        coll.replace({**first, "n": 2}, expected_version=1, previous=first)
    assert coll.get("a")["n"] == 1


def test_a_partial_index_answers_equality_and_skips_empty_rows(tmp_path):
    store = SQLiteStore(tmp_path / "w.db")
    coll = store.collection("things", INDEXES)
    coll.insert({"_id": "a", "code": "a", "township": "t", "cell": "c1"})
    coll.insert({"_id": "b", "code": "b", "township": "t", "cell": None})
    assert [d["_id"] for d in coll.find({"township": "t", "cell": "c1"})] == ["a"]
    conn = store.connection()
    plan = conn.execute('EXPLAIN QUERY PLAN SELECT doc FROM c_things WHERE "township" = ? AND "cell" = ?',
                        ("t", "c1")).fetchall()
    assert any("ix_things_township_cell" in row[-1] for row in plan)
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'ix_things_township_cell'").fetchone()[0]
    assert sql.endswith('WHERE "cell" IS NOT NULL')
