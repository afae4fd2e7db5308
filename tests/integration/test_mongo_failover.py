"""The MongoDB adapter when the primary steps down or the connection drops, over the wire (SecantusDB).

SecantusDB is one node: it cannot elect a new primary. So the errors a replica set gives during a
step-down are injected at the adapter's edge — a wrapper around the pymongo collection raises
``NotPrimaryError`` / ``AutoReconnect`` on chosen calls, either *before* the call (the write never
reached the server) or *after* it (the write landed, the answer was lost) — while every call that
goes through is a real one to the server. docs/mongodb.md says what this does and does not prove.
"""
from __future__ import annotations

import uuid

import pytest
from pymongo.errors import AutoReconnect, NotPrimaryError

from shared.storage import Index, StoreUnavailable, VersionConflict
from shared.storage import mongo_retry
from shared.storage.mongo import MongoStore

WRAPPED = {"insert_one", "replace_one", "find_one_and_update", "find_one", "find", "delete_one",
           "count_documents", "aggregate", "create_indexes"}


def not_primary() -> NotPrimaryError:
    return NotPrimaryError("not primary", {"ok": 0, "code": 10107, "errmsg": "not primary"})


class Flaky:
    """A pymongo collection whose next calls fail: ``before`` calls raise without reaching the
    server; ``after`` calls reach the server and then raise, as a lost acknowledgement does."""

    def __init__(self, coll, before: int = 0, after: int = 0, error=not_primary, only: set[str] = WRAPPED):
        self.coll, self.before, self.after, self.error, self.only = coll, before, after, error, only
        self.calls: list[str] = []

    def __getattr__(self, name):
        target = getattr(self.coll, name)
        if name not in self.only:
            return target

        def call(*args, **kwargs):
            self.calls.append(name)
            if self.before > 0:
                self.before -= 1
                raise self.error()
            result = target(*args, **kwargs)
            if self.after > 0:
                self.after -= 1
                raise self.error()
            return result
        return call


@pytest.fixture(autouse=True)
def quick_pauses(monkeypatch):
    monkeypatch.setattr(mongo_retry, "PAUSES", (0.01, 0.01, 0.01, 0.01, 0.01))


@pytest.fixture
def store(mongo_url):
    s = MongoStore.from_url(mongo_url, "failover_" + uuid.uuid4().hex[:8])
    yield s
    s.client.drop_database(s.db.name)
    s.close()


@pytest.fixture
def things(store):
    return store.collection("things", [Index.on("due"), Index.on("code", unique=True)])


def flaky(coll, **kw) -> Flaky:
    coll.coll = Flaky(coll.coll, **kw)
    return coll.coll


def unwrap(coll) -> None:
    coll.coll = coll.coll.coll


def test_a_write_refused_by_a_stepping_down_primary_is_retried_and_lands_once(things):
    f = flaky(things, before=3)
    things.insert({"_id": "a", "code": "X"})
    assert f.calls == ["insert_one"] * 4
    unwrap(things)
    assert things.find() == [{"_id": "a", "code": "X", "version": 1}]


def test_an_insert_whose_answer_was_lost_is_recognised_not_reported_as_duplicate(things):
    flaky(things, after=1, error=lambda: AutoReconnect("connection closed"))
    things.insert({"_id": "a", "code": "X"})   # landed, answer lost, retry meets its own document
    unwrap(things)
    assert things.count() == 1 and things.get("a")["version"] == 1


def test_a_cas_whose_answer_was_lost_is_recognised_and_a_real_conflict_still_is_one(things):
    things.insert({"_id": "a", "code": "X", "n": 1})
    current = things.get("a")
    flaky(things, after=1)
    stored = things.replace({**current, "n": 2}, current["version"])
    unwrap(things)
    assert stored["version"] == 2 and things.get("a") == {"_id": "a", "code": "X", "n": 2, "version": 2}
    # A different writer got there first: the retry must not mistake their write for ours.
    things.replace({**things.get("a"), "n": 3}, 2)
    flaky(things, before=1)
    with pytest.raises(VersionConflict):
        things.replace({**current, "n": 99}, 2)
    unwrap(things)
    assert things.get("a")["n"] == 3


def test_an_upsert_is_one_statement_so_a_retry_never_leaves_half_a_put(things):
    things.upsert({"_id": "a", "code": "X", "old": True})
    flaky(things, after=1)
    things.upsert({"_id": "a", "code": "Y"})   # applied, answer lost, applied again: same document
    unwrap(things)
    got = things.get("a")
    assert {k: v for k, v in got.items() if k != "version"} == {"_id": "a", "code": "Y"}
    assert got["version"] >= 2


def test_a_claim_whose_answer_was_lost_comes_back_when_its_lease_ends(things):
    things.insert({"_id": "t1", "due": "2026-11-01T00:00:00.000000Z"})
    flaky(things, after=1, only={"find_one_and_update"})
    assert things.claim_due("due", "2026-11-02T00:00:00.000000Z", "2026-11-02T00:01:00.000000Z") == []
    unwrap(things)
    # Nothing is lost: the leased document is claimed again once the lease has passed.
    again = things.claim_due("due", "2026-11-02T00:01:00.000000Z", "2026-11-02T00:02:00.000000Z")
    assert [d["_id"] for d in again] == ["t1"]


def test_no_primary_within_the_bound_is_store_unavailable_and_nothing_is_written(things):
    f = flaky(things, before=100)
    with pytest.raises(StoreUnavailable):
        things.insert({"_id": "a", "code": "X"})
    assert len(f.calls) == len(mongo_retry.PAUSES) + 1
    with pytest.raises(StoreUnavailable):
        things.get("a")
    unwrap(things)
    assert things.count() == 0


def test_reads_and_index_creation_ride_out_a_step_down(store, things):
    things.insert({"_id": "a", "code": "X", "due": "2026-11-01"})
    flaky(things, before=2, error=lambda: AutoReconnect("reset"))
    assert [d["_id"] for d in things.find({"due": {"$lte": "2026-11-02"}})] == ["a"]
    real = store.db["later"]
    store.db = {"later": Flaky(real, before=2)}   # the collection's first createIndexes fails twice
    try:
        later = store.collection("later", [Index.on("x")])
    finally:
        store.db = real.database
    assert "ix_x" in {ix["name"] for ix in later.coll.coll.list_indexes()}


def test_the_api_answers_503_json_when_no_primary_comes_back(tmp_path, clock, mongo_url):
    from shared.runtime import Runtime
    from shared.web import create_app
    from tests.support.runtime import make_settings, token

    settings = make_settings(tmp_path, mongo_url=mongo_url)
    runtime = Runtime(settings, ["intake"], clock=clock, consume=False)
    try:
        reports = runtime.stores["intake"]._collections["reports"]
        flaky(reports, before=10_000)
        app = create_app(runtime)
        app.testing = True
        resp = app.test_client().post(
            "/api/v1/reports", headers=token(runtime, "client"),
            json={"township": "430382100", "category": "environment", "description": "门口路灯坏了一个星期",
                  "reporter_phone": "13800000001", "channel": "mini_program", "address": "韶山村一组12号"})
        assert resp.status_code == 503, resp.json
        assert resp.json["message"] == "数据库暂时不可用，请稍后重试" and resp.headers["Retry-After"] == "5"
        unwrap(reports)
        assert reports.count() == 0
    finally:
        runtime.stores["intake"].client.drop_database(f"{settings.namespace}_intake")
        runtime.stop()


def test_a_photo_upload_cut_short_leaves_no_blob_that_blocks_its_retry(store):
    """GridFS writes the chunks before the file document: chunks left by a put that never finished
    must not make the retried upload look already stored (it would then never be readable)."""
    from bson.binary import Binary

    from shared.storage.blobs import blobs_for

    blobs = blobs_for(store, "photos")
    store.db["photos.chunks"].create_index([("files_id", 1), ("n", 1)], unique=True)
    store.db["photos.chunks"].insert_one({"files_id": "p1", "n": 0, "data": Binary(b"half")})
    blobs.put("p1", b"whole photo", {"township": "430382100"})
    got = blobs.get("p1")
    assert got.data == b"whole photo" and got.meta == {"township": "430382100"}
    from shared.storage import DuplicateKey
    with pytest.raises(DuplicateKey):
        blobs.put("p1", b"other", {})          # a finished blob is still a duplicate
    assert blobs.get("p1").data == b"whole photo"
