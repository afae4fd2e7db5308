"""One contract, every adapter: SQLite, and the MongoDB adapter through pymongo over a socket —
against SecantusDB (MongoDB's wire protocol, started by the tests) or against a real MongoDB when
SANZHANG_MONGO_URL is set (the ``mongo_url`` fixture)."""
from __future__ import annotations

import os
import threading
import uuid

import pytest

from shared.storage import DuplicateKey, Index, UndeclaredField, VersionConflict
from shared.storage.mongo import MongoStore
from shared.storage.sqlite import SQLiteStore
from tests.support.stores import ADAPTERS, close_adapter, open_adapter

INDEXES = [Index.on("township"), Index.on("township", "status"), Index.on("due"), Index.on("code", unique=True)]

@pytest.fixture
def coll(store):
    return store.collection("things", INDEXES)


def doc(i, **kw):
    base = {"_id": f"d{i}", "township": "430382100", "status": "open", "due": None, "n": i}
    base.update(kw)
    return base


def test_insert_get_and_duplicate_id(coll):
    stored = coll.insert(doc(1, nested={"a": [1, 2]}, text="中文"))
    assert stored["version"] == 1
    got = coll.get("d1")
    assert got["nested"] == {"a": [1, 2]} and got["text"] == "中文" and got["version"] == 1
    with pytest.raises(DuplicateKey):
        coll.insert(doc(1))
    assert coll.get("missing") is None


def test_indexed_values_of_every_kind_are_found_as_they_were_written(store):
    """Booleans, numbers, missing and null values in indexed fields: written to their columns as the
    queries read them (SQLite passes text and numbers unchanged and converts the rest)."""
    things = store.collection("kinds", [Index.on("flag"), Index.on("score"), Index.on("label"), Index.on("tags")])
    things.insert({"_id": "a", "flag": True, "score": 1.5, "label": "x", "tags": ["p", "q"]})
    things.insert({"_id": "b", "flag": False, "score": 2, "label": None})
    things.insert({"_id": "c", "score": -3})
    assert [d["_id"] for d in things.find({"flag": True})] == ["a"]
    assert [d["_id"] for d in things.find({"flag": False})] == ["b"]
    assert sorted(d["_id"] for d in things.find({"score": {"$gt": 1.6}})) == ["b"]
    assert sorted(d["_id"] for d in things.find({"score": {"$lt": 0}})) == ["c"]
    assert sorted(d["_id"] for d in things.find({"label": None})) == ["b", "c"]
    assert [d["_id"] for d in things.find({"label": "x"})] == ["a"]
    assert things.get("a")["tags"] == ["p", "q"] and things.get("b")["flag"] is False


def test_replace_many_is_a_compare_and_set_per_document(coll):
    for i in (1, 2, 3, 4):
        coll.insert(doc(i, code=f"C{i}"))
    one, two, three, four = (coll.get(f"d{i}") for i in (1, 2, 3, 4))
    coll.replace({**two, "status": "taken"}, two["version"])  # another writer got to d2 first
    results = coll.replace_many([({**one, "status": "done"}, one["version"], one),
                                 ({**two, "status": "lost"}, two["version"], two),
                                 ({**three, "code": "C4"}, three["version"], three),   # collides with d4
                                 ({**four, "status": "done", "due": "x"}, four["version"], None)])
    assert results[0]["version"] == 2 and results[3]["version"] == 2
    assert isinstance(results[1], VersionConflict) and isinstance(results[2], DuplicateKey)
    assert [coll.get(f"d{i}")["status"] for i in (1, 2, 3, 4)] == ["done", "taken", "open", "done"]
    assert coll.get("d3")["code"] == "C3" and coll.find({"due": "x"})[0]["_id"] == "d4"
    assert coll.replace_many([]) == []


def test_unique_index_rejects_second_value_but_allows_missing(coll):
    coll.insert(doc(1, code="A"))
    coll.insert(doc(2))
    coll.insert(doc(3))  # documents without the key do not collide
    with pytest.raises(DuplicateKey):
        coll.insert(doc(4, code="A"))
    assert coll.count() == 3


def test_compare_and_set(coll):
    coll.insert(doc(1))
    current = coll.get("d1")
    updated = coll.replace({**current, "status": "done"}, current["version"])
    assert updated["version"] == 2 and coll.get("d1")["status"] == "done"
    with pytest.raises(VersionConflict):
        coll.replace({**current, "status": "lost"}, current["version"])
    with pytest.raises(VersionConflict):
        coll.replace(doc(9), 1)  # a missing document is a conflict, never an insert
    assert coll.get("d1")["status"] == "done"


def test_upsert_puts_whole_document(coll):
    coll.upsert(doc(1, extra="x"))
    coll.upsert(doc(1, status="closed"))
    got = coll.get("d1")
    assert got["status"] == "closed" and "extra" not in got and got["version"] == 2


def test_find_filters_sort_limit_skip(coll):
    for i in range(10):
        coll.insert(doc(i, status="open" if i % 2 else "closed", due=f"2026-11-0{i}T00:00:00.000000Z"))
    coll.insert(doc(99, township="430382101"))
    open_ = coll.find({"township": "430382100", "status": "open"}, sort=[("due", -1)])
    assert [d["_id"] for d in open_] == ["d9", "d7", "d5", "d3", "d1"]
    page = coll.find({"township": "430382100"}, sort=[("due", 1)], limit=3, skip=2)
    assert [d["_id"] for d in page] == ["d2", "d3", "d4"]
    ranged = coll.find({"due": {"$gte": "2026-11-03", "$lt": "2026-11-05"}}, sort=[("due", 1)])
    assert [d["_id"] for d in ranged] == ["d3", "d4"]
    assert {d["_id"] for d in coll.find({"status": {"$in": ["closed"]}, "township": "430382100"})} == {"d0", "d2", "d4", "d6", "d8"}
    assert coll.find({"status": {"$in": []}}) == []
    assert [d["_id"] for d in coll.find({"due": None})] == ["d99"]
    assert len(coll.find({"due": {"$ne": None}})) == 10


def test_queries_on_undeclared_fields_are_refused(coll):
    with pytest.raises(UndeclaredField):
        coll.find({"n": 1})
    with pytest.raises(UndeclaredField):
        coll.find({}, sort=[("n", 1)])
    with pytest.raises(UndeclaredField):
        coll.group_count("n")


def test_count_and_group_count(coll):
    for i in range(7):
        coll.insert(doc(i, status=["open", "closed", "warned"][i % 3]))
    assert coll.count({"township": "430382100"}) == 7
    assert coll.group_count("status", {"township": "430382100"}) == {"open": 3, "closed": 2, "warned": 2}


def test_delete(coll):
    coll.insert(doc(1))
    assert coll.delete("d1") is True
    assert coll.delete("d1") is False
    assert coll.get("d1") is None


def test_claim_due_takes_only_due_documents_and_pushes_them_forward(coll):
    coll.insert(doc(1, due="2026-11-01T00:00:00.000000Z"))
    coll.insert(doc(2, due="2026-11-02T00:00:00.000000Z"))
    coll.insert(doc(3, due="2026-11-09T00:00:00.000000Z"))
    coll.insert(doc(4, due=None))
    claimed = coll.claim_due("due", "2026-11-05T00:00:00.000000Z", "2026-11-05T00:01:00.000000Z", limit=10)
    assert sorted(d["_id"] for d in claimed) == ["d1", "d2"]
    assert all(d["due"] == "2026-11-05T00:01:00.000000Z" and d["version"] == 2 for d in claimed)
    assert coll.get("d1")["due"] == "2026-11-05T00:01:00.000000Z"
    # Leased: nothing more until the lease passes.
    assert coll.claim_due("due", "2026-11-05T00:00:30.000000Z", "2026-11-05T00:02:00.000000Z") == []
    again = coll.claim_due("due", "2026-11-05T00:01:00.000000Z", "2026-11-05T00:03:00.000000Z", limit=1)
    assert len(again) == 1


def test_claim_due_can_return_only_some_fields(coll):
    coll.insert(doc(1, due="2026-11-01T00:00:00.000000Z", outbox=[{"id": "e1", "payload": {"text": "中文"}}]))
    coll.insert(doc(2, due="2026-11-01T00:00:01.000000Z"))
    claimed = coll.claim_due("due", "2026-11-05T00:00:00.000000Z", "2026-11-05T00:01:00.000000Z", fields=("outbox",))
    assert claimed[0] == {"_id": "d1", "version": 2, "outbox": [{"id": "e1", "payload": {"text": "中文"}}]}
    # a field the document lacks is missing or null, never an error
    assert claimed[1]["_id"] == "d2" and claimed[1]["version"] == 2 and claimed[1].get("outbox") is None
    assert coll.get("d1")["due"] == "2026-11-05T00:01:00.000000Z" and coll.get("d1")["n"] == 1


def test_find_can_return_only_some_fields(coll):
    coll.insert(doc(1, place={"lat": 27.9, "lng": 112.5}, tags=["a"], text="中文", big="x" * 1000))
    coll.insert(doc(2, text=None))
    got = coll.find({"township": "430382100"}, sort=[("_id", 1)], fields=("place", "tags", "text", "status"))
    assert got[0] == {"_id": "d1", "version": 1, "place": {"lat": 27.9, "lng": 112.5}, "tags": ["a"],
                      "text": "中文", "status": "open"}
    assert got[1]["_id"] == "d2" and got[1]["text"] is None and got[1].get("place") is None and "big" not in got[1]


@pytest.mark.parametrize("fields", [("flag",), ("flag", "n", "place", "text"), ()])
def test_picked_fields_keep_their_json_types(coll, fields):
    """One field or several, each comes back as stored (true, not 1; an object, not its text); none
    at all is the id and version alone."""
    coll.insert(doc(1, flag=True, place={"lat": 27.9}, text="中文"))
    coll.insert(doc(2, flag=False))
    expected = [{"flag": True, "n": 1, "place": {"lat": 27.9}, "text": "中文"}, {"flag": False, "n": 2}]
    got = coll.find({"township": "430382100"}, sort=[("_id", 1)], fields=fields)
    for found, wanted in zip(got, expected):
        assert {k: v for k, v in found.items() if v is not None} == \
            {"_id": found["_id"], "version": 1, **{f: wanted[f] for f in fields if f in wanted}}
    assert [type(d.get("flag")) for d in got] == ([bool, bool] if fields else [type(None)] * 2)


def test_patch_many_sets_fields_only_where_the_version_still_matches(coll):
    for i in range(1, 5):
        coll.insert(doc(i, due="2026-11-01T00:00:00.000000Z", outbox=[{"id": f"e{i}"}]))
    moved = coll.get("d2")
    coll.replace({**moved, "status": "done"}, moved["version"])  # written since it was read
    done = coll.patch_many([("d1", 1), ("d2", 1), ("d3", 1), ("missing", 1)], {"outbox": [], "due": None})
    assert done == {"d1", "d3"}
    d1 = coll.get("d1")
    assert d1["outbox"] == [] and d1["due"] is None and d1["version"] == 2 and d1["n"] == 1
    d2 = coll.get("d2")
    assert d2["outbox"] == [{"id": "e2"}] and d2["status"] == "done" and d2["version"] == 2
    assert coll.get("d4")["outbox"] == [{"id": "e4"}]
    # the indexed column changed with the document: the due query no longer finds them
    assert sorted(d["_id"] for d in coll.find({"due": {"$ne": None}})) == ["d2", "d4"]
    assert coll.patch_many([], {"due": None}) == set()


@pytest.fixture(params=ADAPTERS)
def concurrent_store(request, tmp_path):
    s = open_adapter(request, tmp_path, request.param, "race")
    yield s
    close_adapter(s)


def test_claim_due_is_exclusive_across_threads(concurrent_store):
    store = concurrent_store
    coll = store.collection("timers", [Index.on("due")])
    for i in range(300):
        coll.insert({"_id": f"t{i}", "due": "2026-11-01T00:00:00.000000Z"})
    got: list[str] = []
    lock = threading.Lock()

    def claimer():
        while True:
            batch = coll.claim_due("due", "2026-11-02T00:00:00.000000Z", "2026-11-03T00:00:00.000000Z", limit=7)
            if not batch:
                return
            with lock:
                got.extend(d["_id"] for d in batch)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 300 and len(set(got)) == 300


def test_sqlite_store_is_shared_by_two_processes_on_one_file(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "shared.db"
    coll = SQLiteStore(path).collection("things", INDEXES)
    coll.insert(doc(1))
    code = ("import sys; from shared.storage.sqlite import SQLiteStore; from shared.storage import Index;"
            f"c=SQLiteStore(sys.argv[1]).collection('things', {INDEXES!r});"
            "d=c.get('d1'); c.replace({**d, 'status': 'other-process'}, d['version'])")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=os.getcwd())
    assert coll.get("d1")["status"] == "other-process"


def test_sqlite_adds_new_index_columns_to_existing_tables(tmp_path):
    path = tmp_path / "upgrade.db"
    SQLiteStore(path).collection("things", [Index.on("township")]).insert(doc(1, status="late"))
    upgraded = SQLiteStore(path).collection("things", [Index.on("township"), Index.on("status")])
    assert [d["_id"] for d in upgraded.find({"status": "late"})] == ["d1"]
