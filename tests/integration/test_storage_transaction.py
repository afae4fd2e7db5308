"""The SQLite store's transaction (what a consumer's batch and a relay's claim write in): one commit
for the block, a nested block a savepoint undone alone, claims inside it, nothing seen outside
before the commit. On a real SQLite file, with a second store on it standing for another process."""
from __future__ import annotations

import pytest

from shared.storage import DuplicateKey, Index
from shared.storage.sqlite import SQLiteStore


@pytest.fixture
def stores(tmp_path):
    path = tmp_path / "t.db"
    mine, other = SQLiteStore(path), SQLiteStore(path)
    yield mine.collection("docs", [Index.on("due")]), other.collection("docs", [Index.on("due")])
    mine.close()
    other.close()


def test_the_block_commits_once_at_its_end_and_reads_inside_see_its_writes(stores):
    docs, seen_elsewhere = stores
    with docs.transaction():
        docs.insert({"_id": "a", "due": None})
        docs.insert({"_id": "b", "due": None})
        assert docs.get("a") is not None            # this thread reads its own writes
        assert seen_elsewhere.get("a") is None       # nobody else sees them before the commit
    assert {d["_id"] for d in seen_elsewhere.find()} == {"a", "b"}


def test_a_block_that_raises_stores_nothing(stores):
    docs, _ = stores
    with pytest.raises(RuntimeError):
        with docs.transaction():
            docs.insert({"_id": "a", "due": None})
            raise RuntimeError("handler failed")
    assert docs.find() == []
    docs.insert({"_id": "b", "due": None})  # the write lock was given back
    assert [d["_id"] for d in docs.find()] == ["b"]


def test_a_nested_block_that_raises_undoes_its_own_writes_alone(stores):
    docs, seen_elsewhere = stores
    with docs.transaction():
        with docs.transaction():
            docs.insert({"_id": "kept", "due": None})
        with pytest.raises(RuntimeError):
            with docs.transaction():
                docs.insert({"_id": "undone", "due": None})
                stored = docs.get("kept")
                docs.replace({**stored, "due": "2026-01-01"}, stored["version"])
                raise RuntimeError("poison")
        with docs.transaction():
            with pytest.raises(DuplicateKey):       # a failed statement leaves the transaction usable
                docs.insert({"_id": "kept", "due": None})
            docs.insert({"_id": "after", "due": None})
    assert {d["_id"] for d in seen_elsewhere.find()} == {"kept", "after"}
    assert seen_elsewhere.get("kept")["due"] is None


def test_first_in_transaction_notes_a_key_once_and_forgets_what_an_undone_savepoint_noted(tmp_path):
    store = SQLiteStore(tmp_path / "n.db")
    assert store.first_in_transaction("k") and store.first_in_transaction("k")  # no transaction: always
    with store.transaction():
        with store.transaction():
            assert store.first_in_transaction("kept")
        with pytest.raises(RuntimeError):
            with store.transaction():
                assert store.first_in_transaction("undone")
                assert not store.first_in_transaction("undone")
                raise RuntimeError("this message's handler failed")
        assert not store.first_in_transaction("kept")   # its savepoint was released: it stands
        assert store.first_in_transaction("undone")      # its write was rolled back: write it again
    with store.transaction():
        assert store.first_in_transaction("kept")        # a new transaction starts with nothing noted
    store.close()


def test_a_claim_inside_a_transaction_takes_the_held_write_lock_again(stores):
    docs, seen_elsewhere = stores
    docs.insert({"_id": "a", "due": "2026-01-01T00:00:00Z"})
    with docs.transaction():
        claimed = docs.claim_due("due", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z")
        assert [d["_id"] for d in claimed] == ["a"]
        assert seen_elsewhere.get("a")["due"] == "2026-01-01T00:00:00Z"
    assert seen_elsewhere.get("a")["due"] == "2026-01-03T00:00:00Z"


@pytest.fixture(params=["sqlite", "mongodb", "memory"])
def any_store(request, tmp_path):
    from tests.support.fakes.memory_store import MemoryStore
    from tests.support.stores import close_adapter, open_adapter

    if request.param == "memory":
        yield MemoryStore()
        return
    s = open_adapter(request, tmp_path, request.param, "tx")
    yield s
    close_adapter(s)


def test_every_adapter_stores_a_blocks_writes_and_a_nested_failure_leaves_the_others(any_store):
    """The port's promise on all adapters (MongoDB and the fake store each write as it is made;
    SQLite at the end): a caller relying only on it — fewer commits, never atomicity — is right on each."""
    docs = any_store.collection("docs", [Index.on("due")])
    with docs.transaction():
        docs.insert({"_id": "a", "due": None})
        with pytest.raises(RuntimeError):
            with any_store.transaction():
                raise RuntimeError("one message's handler failed")
        docs.insert({"_id": "b", "due": None})
    assert {d["_id"] for d in docs.find()} == {"a", "b"}
