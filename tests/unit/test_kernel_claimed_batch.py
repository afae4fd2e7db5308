"""Aggregates.mutate_claimed: a sweep's claim changed from the claimed documents and written together,
each still a compare-and-set (pure, in-memory store)."""
from __future__ import annotations

import pytest

from shared.aggregates import Aggregates, Unchanged
from shared.clock import FakeClock
from shared.storage import Index
from tests.support.fakes.memory_store import MemoryStore

LATER = "2026-11-02T01:01:00.000000Z"


@pytest.fixture
def things():
    store = MemoryStore()
    repo = Aggregates(store.collection("things", [Index.on("due")]), FakeClock())
    for i in range(4):
        repo.add({"_id": f"t{i}", "due": "2026-11-02T00:00:00.000000Z", "n": 0})
    return store, repo


def claim(repo):
    return repo.collection.claim_due("due", "2026-11-02T01:00:00.000000Z", LATER, 10)


def bump(repo, seen):
    def work(doc):
        seen.append(doc["_id"])

        def change(current):
            if current["_id"] == "t3":
                raise Unchanged
            if current["_id"] == "t2":
                raise RuntimeError("this one fails")
            current["n"] += 1
            current["due"] = None
            return [{"id": f"e-{current['_id']}-{current['n']}", "type": "thing.bumped"}]
        repo.mutate(doc["_id"], change)
    return work


def test_one_write_for_the_claim_no_second_read_and_a_failure_stays_alone(things):
    store, repo = things
    claimed = claim(repo)
    del store.writes[:]
    seen = []
    failed = repo.mutate_claimed(claimed, bump(repo, seen))
    assert list(failed) == ["t2"] and isinstance(failed["t2"], RuntimeError)
    assert seen == ["t0", "t1", "t2", "t3"]
    assert [w[0] for w in store.writes] == ["replace", "replace"]  # t0 and t1; t3 needed nothing
    docs = {i: repo.get(f"t{i}") for i in range(4)}
    assert docs[0]["n"] == docs[1]["n"] == 1 and docs[0]["outbox"][0]["id"] == "e-t0-1"
    assert docs[2]["due"] == docs[3]["due"] == LATER  # still leased: they come back after it


def test_a_document_written_since_the_claim_is_done_again_from_what_is_stored(things):
    _, repo = things
    claimed = [d for d in claim(repo) if d["_id"] in ("t0", "t1")]
    current = repo.get("t1")
    repo.collection.replace({**current, "n": 10}, current["version"])  # someone else's change
    seen = []
    assert repo.mutate_claimed(claimed, bump(repo, seen)) == {}
    assert seen == ["t0", "t1", "t1"]  # t1's compare-and-set lost, so its work ran again
    assert repo.get("t0")["n"] == 1 and repo.get("t1")["n"] == 11
    assert [e["id"] for e in repo.get("t1")["outbox"]] == ["e-t1-11"]


def test_a_store_failure_stores_nothing_of_the_batch(things, monkeypatch):
    _, repo = things
    claimed = claim(repo)

    def down(items):
        raise OSError("disk gone")
    monkeypatch.setattr(repo.collection, "replace_many", down)
    with pytest.raises(OSError):
        repo.mutate_claimed(claimed, bump(repo, []))
    assert all(repo.get(f"t{i}")["n"] == 0 for i in range(4))
    monkeypatch.undo()
    # the batch mode is over: an ordinary mutate writes at once
    repo.mutate("t0", lambda d: d.update(n=5))
    assert repo.get("t0")["n"] == 5
