"""Aggregates.mutate_claimed on every adapter: a claimed document is changed in place (no deep copy,
issue 16), so the write must still see which indexed columns changed, and a document that lost its
compare-and-set must be worked on again from its top level as claimed."""
from __future__ import annotations

from shared.aggregates import Aggregates
from shared.clock import FakeClock
from shared.storage import Index

DUE = "2026-11-02T00:00:00.000000Z"
NOW = "2026-11-02T01:00:00.000000Z"
LEASE = "2026-11-02T01:01:00.000000Z"


def _repo(store):
    repo = Aggregates(store.collection("claimedthings", [Index.on("due"), Index.on("level")]), FakeClock())
    for i in range(3):
        repo.add({"_id": f"t{i}", "due": DUE, "level": "neighbourhood", "timeline": [], "timer": {"step": 1}})
    return repo


def _climb(repo, seen):
    def work(doc):
        seen.append((doc["_id"], doc["due"], doc["timer"]["step"]))

        def change(case):
            case["timeline"].append({"type": "escalated"})  # nested, changed in place
            case["level"], case["due"] = "group", None       # indexed, replaced
            case["timer"] = {"step": case["timer"]["step"] + 1}
            return [{"id": f"e-{case['_id']}", "type": "case.escalated"}]
        repo.mutate(doc["_id"], change)
    return work


def test_indexed_columns_changed_in_place_are_written_and_found(store):
    repo = _repo(store)
    claimed = repo.collection.claim_due("due", NOW, LEASE, 10)
    assert repo.mutate_claimed(claimed, _climb(repo, [])) == {}
    assert {d["_id"] for d in repo.collection.find({"level": "group"})} == {"t0", "t1", "t2"}
    assert repo.collection.find({"level": "neighbourhood"}) == []
    assert repo.collection.claim_due("due", "2099-01-01T00:00:00.000000Z", LEASE, 10) == []  # due cleared
    stored = repo.get("t1")
    assert stored["timeline"] == [{"type": "escalated"}] and stored["timer"] == {"step": 2}
    assert [e["id"] for e in stored["outbox"]] == ["e-t1"]


def test_a_lost_compare_and_set_works_again_from_the_document_as_claimed(store):
    repo = _repo(store)
    claimed = repo.collection.claim_due("due", NOW, LEASE, 10)
    current = repo.get("t2")
    repo.collection.replace({**current, "note": "a lead's change"}, current["version"])
    seen = []
    assert repo.mutate_claimed(claimed, _climb(repo, seen)) == {}
    # t2 ran twice, the second time with the claimed top level (the lease, step 1), not the change
    # the lost attempt made to the claimed document in place.
    assert seen[-1] == ("t2", LEASE, 1) and [s[0] for s in seen] == ["t0", "t1", "t2", "t2"]
    stored = repo.get("t2")
    assert stored["note"] == "a lead's change" and stored["level"] == "group"
    assert stored["timeline"] == [{"type": "escalated"}] and stored["timer"] == {"step": 2}
