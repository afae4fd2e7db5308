"""The SQLite store's buffered unit (what a consumer's batch writes in first, issue 16): its writes
wait in memory and are made at its end in one short transaction, each checked then — a lost
compare-and-set or a taken key stores nothing of the unit — while what cannot wait says so at once.
On a real SQLite file, with a second store on it standing for another process."""
from __future__ import annotations

import threading

import pytest

from shared.storage import BufferConflict, Index, NeedsTransaction
from shared.storage.blobs import SQLiteBlobs
from shared.storage.sqlite import SQLiteStore


@pytest.fixture
def pair(tmp_path):
    path = tmp_path / "b.db"
    mine, other = SQLiteStore(path), SQLiteStore(path)
    yield mine, mine.collection("docs", [Index.on("due")]), other.collection("docs", [Index.on("due")])
    mine.close()
    other.close()


def test_writes_wait_for_the_end_and_the_unit_reads_its_own_documents_by_id(pair):
    store, docs, elsewhere = pair
    docs.insert({"_id": "a", "due": None, "n": 1})
    with store.buffered():
        docs.insert({"_id": "b", "due": None, "n": 1})
        docs.replace({"_id": "a", "due": "2026-01-01", "n": 2}, 1)
        assert docs.get("b")["n"] == 1 and docs.get("a") == {"_id": "a", "due": "2026-01-01", "n": 2, "version": 2}
        assert elsewhere.get("b") is None and elsewhere.get("a")["n"] == 1   # nothing made yet
    assert elsewhere.get("a")["version"] == 2 and elsewhere.get("b")["n"] == 1
    assert elsewhere.find({"due": "2026-01-01"})[0]["_id"] == "a"            # indexed columns too


def test_the_write_lock_is_free_while_the_unit_works(pair):
    store, docs, elsewhere = pair
    with store.buffered():
        docs.insert({"_id": "mine", "due": None})
        # Another writer (thread or process) is not kept waiting by the unit's work.
        writer = threading.Thread(target=lambda: elsewhere.insert({"_id": "theirs", "due": None}))
        writer.start()
        writer.join(5)
        assert not writer.is_alive()
    assert {d["_id"] for d in elsewhere.find()} == {"mine", "theirs"}


def test_a_compare_and_set_lost_meanwhile_stores_nothing_of_the_unit(pair):
    store, docs, elsewhere = pair
    docs.insert({"_id": "a", "due": None, "n": 1})
    with pytest.raises(BufferConflict):
        with store.buffered():
            docs.insert({"_id": "new", "due": None})
            docs.replace({"_id": "a", "due": None, "n": 2}, 1)
            elsewhere.replace({"_id": "a", "due": None, "n": 9}, 1)   # another writer wins first
    assert elsewhere.get("new") is None and elsewhere.get("a")["n"] == 9


def test_a_key_taken_meanwhile_stores_nothing_of_the_unit(pair):
    store, docs, elsewhere = pair
    with pytest.raises(BufferConflict):
        with store.buffered():
            docs.insert({"_id": "x", "due": None})
            docs.insert({"_id": "same", "due": None})
            elsewhere.insert({"_id": "same", "due": "theirs"})
    assert elsewhere.get("x") is None and elsewhere.get("same")["due"] == "theirs"


def test_a_put_counts_the_version_up_from_the_stored_one_at_the_commit(pair):
    """As MongoDB's upsert does (one atomic statement): a put read nothing it could lose, so it never
    conflicts, and a version read before it has always moved after it (a rollup's dirty mark)."""
    store, docs, elsewhere = pair
    docs.upsert({"_id": "mark", "due": "t1"})
    with store.buffered():
        docs.upsert({"_id": "mark", "due": "t2"})
        elsewhere.upsert({"_id": "mark", "due": "t3"})   # version 2, made first
    assert elsewhere.get("mark") == {"_id": "mark", "due": "t2", "version": 3}


def test_a_part_that_raises_is_undone_alone_and_forgets_what_it_noted(pair):
    store, docs, elsewhere = pair
    with store.buffered():
        docs.insert({"_id": "kept", "due": None})
        assert store.first_in_transaction("day") is True
        with pytest.raises(RuntimeError):
            with store.transaction():
                docs.insert({"_id": "undone", "due": None})
                assert store.first_in_transaction("other") is True
                raise RuntimeError("handler failed")
        assert docs.get("undone") is None
        assert store.first_in_transaction("day") is False and store.first_in_transaction("other") is True
    assert {d["_id"] for d in elsewhere.find()} == {"kept"}


def test_a_unit_that_raises_stores_nothing_and_wakes_nobody(pair):
    store, docs, elsewhere = pair
    woken = []
    with pytest.raises(RuntimeError):
        with store.buffered():
            docs.insert({"_id": "a", "due": None})
            docs.after_commit(lambda: woken.append("relay"))
            raise RuntimeError("abandoned")
    assert elsewhere.find() == [] and woken == []
    with store.buffered():
        docs.insert({"_id": "b", "due": None})
        docs.after_commit(lambda: woken.append("relay"))
        assert woken == []                                       # not before the commit
    assert woken == ["relay"]
    docs.after_commit(lambda: woken.append("now"))               # outside a unit: at once
    assert woken == ["relay", "now"]


@pytest.mark.parametrize("what", ["find", "count", "aggregate", "claim", "patch", "delete", "replace_many", "blob"])
def test_what_cannot_wait_for_the_commit_says_so_and_leaves_the_unit_whole(pair, tmp_path, what):
    store, docs, elsewhere = pair
    docs.insert({"_id": "a", "due": "2026-01-01"})
    blobs = SQLiteBlobs(store, "photos")
    calls = {
        "find": lambda: docs.find({"due": "2026-01-01"}),
        "count": lambda: docs.count(),
        "aggregate": lambda: docs.group_count("due"),
        "claim": lambda: docs.claim_due("due", "2027-01-01", "2028-01-01"),
        "patch": lambda: docs.patch_many([("a", 1)], {"due": None}),
        "delete": lambda: docs.delete("a"),
        "replace_many": lambda: docs.replace_many([({"_id": "a", "due": None}, 1, None)]),
        "blob": lambda: blobs.put("p1", b"photo", {"type": "image/jpeg"}),
    }
    with pytest.raises(NeedsTransaction):
        with store.buffered():
            docs.insert({"_id": "b", "due": None})
            calls[what]()
    assert elsewhere.get("b") is None and elsewhere.get("a")["version"] == 1


def test_a_query_over_a_table_the_unit_has_not_written_reads_what_is_stored(pair):
    store, docs, elsewhere = pair
    other = store.collection("others", [Index.on("due")])
    other.insert({"_id": "o", "due": "x"})
    with store.buffered():
        docs.insert({"_id": "b", "due": None})
        assert [d["_id"] for d in other.find({"due": "x"})] == ["o"]
    assert elsewhere.get("b") is not None


def test_a_unit_is_not_opened_inside_a_transaction(pair):
    store, docs, _ = pair
    with docs.transaction():
        with pytest.raises(Exception, match="not nested"):
            with store.buffered():
                pass
