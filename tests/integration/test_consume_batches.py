"""A consumer's batch (shared/messaging/consume_batch.py): handled in one SQLite transaction, each
message in its own savepoint, acked together only after the commit; a failing message undone and
sent back alone; a batch that cannot commit sent back whole and stored once when it comes again.
First with stand-in messages (exactly what is acked, requeued, committed), then on the real broker."""
from __future__ import annotations

import contextlib
import json
import threading

import pytest

from shared.config import Settings
from shared.messaging.consume import EventWorker
from shared.storage import DuplicateKey, Index
from shared.storage.sqlite import SQLiteStore
from tests.integration.test_messaging_amqp import event, get_all, names, queue_depth, wait_for  # noqa: F401


class FakeMessage:
    """What kombu hands the worker; records how it was settled."""
    log: list = []

    def __init__(self, ev: dict, tag: int):
        self.body = json.dumps(ev).encode()
        self.delivery_tag = tag
        self.headers = {}

    def ack(self, multiple=False):
        self.log.append(("ack", self.delivery_tag, multiple))

    def requeue(self):
        self.log.append(("requeue", self.delivery_tag))

    def reject(self, requeue=False):
        self.log.append(("reject", self.delivery_tag, requeue))


class CountingStore:
    """The SQLite store, counting outer transactions; ``fail_commits`` of them raise at the end."""

    def __init__(self, store: SQLiteStore, fail_commits: int = 0):
        self.store, self.fail_commits, self.commits = store, fail_commits, 0
        self.depth = 0

    @contextlib.contextmanager
    def transaction(self):
        self.depth += 1
        try:
            with self.store.transaction():
                yield
                if self.depth == 1:
                    self.commits += 1
                    if self.fail_commits:
                        self.fail_commits -= 1
                        raise OSError("disk I/O error")
        finally:
            self.depth -= 1


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "consumer.db")
    yield s
    s.close()


def recording_handler(docs, bad_ids=()):
    def handle(ev):
        try:
            docs.insert({"_id": ev["id"]})
        except DuplicateKey:
            return  # redelivered: done already
        if ev["id"] in bad_ids:
            raise RuntimeError("handler failed after writing")
    return handle


def test_a_batch_commits_once_then_acks_once_and_a_failing_message_is_undone_and_requeued_alone(store):
    docs = store.collection("handled")
    events = [event() for _ in range(5)]
    counting = CountingStore(store)
    worker = EventWorker(Settings(namespace="unit"), "beta",
                         {"report.submitted": recording_handler(docs, {events[2]["id"]})}, store=counting)
    FakeMessage.log = []
    for tag, ev in enumerate(events, start=1):
        worker.on_message(FakeMessage(ev, tag))
    assert worker.in_flight == 5 and FakeMessage.log == []   # nothing settled before the commit
    worker._finish_batch()
    assert counting.commits == 1
    # the failed one goes back first, so the one multiple ack covers exactly the four handled
    assert FakeMessage.log == [("requeue", 3), ("ack", 5, True)]
    assert {d["_id"] for d in docs.find()} == {ev["id"] for i, ev in enumerate(events) if i != 2}
    assert worker.handled == 4 and worker.in_flight == 0


def test_an_undecodable_message_is_dead_lettered_at_once_and_the_batch_goes_on(store):
    docs = store.collection("handled")
    worker = EventWorker(Settings(namespace="unit"), "beta", {"report.submitted": recording_handler(docs)},
                         store=CountingStore(store))
    FakeMessage.log = []
    good = FakeMessage(event(), 2)
    poison = FakeMessage(event(), 1)
    poison.body = b"{not json"
    worker.on_message(poison)
    worker.on_message(good)
    worker._finish_batch()
    assert FakeMessage.log == [("reject", 1, False), ("ack", 2, True)]


def test_a_batch_that_cannot_commit_is_sent_back_whole_and_nothing_of_it_is_kept(store):
    docs = store.collection("handled")
    worker = EventWorker(Settings(namespace="unit"), "beta", {"report.submitted": recording_handler(docs)},
                         store=CountingStore(store, fail_commits=1))
    FakeMessage.log = []
    for tag in (1, 2, 3):
        worker.on_message(FakeMessage(event(), tag))
    worker._finish_batch()
    assert FakeMessage.log == [("requeue", 1), ("requeue", 2), ("requeue", 3)]
    assert docs.find() == []


def test_on_the_broker_a_failing_message_is_dead_lettered_alone_and_the_rest_stored_once(amqp_url, names, store):
    from shared.messaging.publish import PikaPublisher

    docs = store.collection("handled")
    events = [event() for _ in range(40)]
    bad = events[17]["id"]
    # Queued before the consumer starts, so they arrive together and are handled in batches.
    PikaPublisher(amqp_url, names.exchange).publish(events)
    counting = CountingStore(store, fail_commits=1)   # and the first batch's commit fails
    settings = Settings(amqp_url=amqp_url, namespace=names.namespace, max_deliveries=2)
    worker = EventWorker(settings, "beta", {"report.submitted": recording_handler(docs, {bad})}, store=counting)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: queue_depth(amqp_url, names.dead_queue("beta")) == 1, timeout=30)
        assert wait_for(lambda: queue_depth(amqp_url, names.queue("beta")) == 0)
    finally:
        worker.should_stop = True
        thread.join(10)
    stored = [d["_id"] for d in docs.find()]
    assert sorted(stored) == sorted(ev["id"] for ev in events if ev["id"] != bad)   # each once, the bad one never
    assert counting.commits >= 2   # the failed commit, then the batches that stored them
    assert [json.loads(body)["id"] for _, body in get_all(amqp_url, names.dead_queue("beta"))] == [bad]


def test_a_message_handed_over_after_the_loop_left_is_left_unacked_and_opens_no_batch(store):
    """kombu's cancel at the end of consume() may still deliver: a batch opened then would never be
    committed and its transaction would hold the store's write lock for good (the process's relay
    and its graceful stop waited on it forever)."""
    docs = store.collection("handled")
    worker = EventWorker(Settings(namespace="unit"), "beta", {"report.submitted": recording_handler(docs)},
                         store=CountingStore(store))
    worker._accepting = False
    FakeMessage.log = []
    worker.on_message(FakeMessage(event(), 1))
    assert worker._batch is None and FakeMessage.log == [] and docs.find() == []
    docs.insert({"_id": "the write lock is free"})


# -- on SQLite itself: the batch is first a buffered unit (handlers run without the write lock) ----------

def test_a_buffered_batch_is_stored_by_one_commit_and_acked_once(store):
    docs = store.collection("handled")
    events = [event() for _ in range(4)]
    worker = EventWorker(Settings(namespace="unit"), "beta",
                         {"report.submitted": recording_handler(docs, {events[1]["id"]})}, store=store)
    FakeMessage.log = []
    for tag, ev in enumerate(events, start=1):
        worker.on_message(FakeMessage(ev, tag))
    other = SQLiteStore(store.path).collection("handled")
    assert other.find() == []                      # nothing made before the commit
    other.insert({"_id": "another writer is not kept waiting"})
    worker._finish_batch()
    assert FakeMessage.log == [("requeue", 2), ("ack", 4, True)]
    assert {d["_id"] for d in docs.find()} == {ev["id"] for i, ev in enumerate(events) if i != 1} | {
        "another writer is not kept waiting"}


def test_a_handler_that_must_query_its_own_writes_and_those_after_it_are_handled_after_the_commit_in_order(store):
    docs = store.collection("handled", [Index.on("kind")])
    order = []

    def counting(ev):
        order.append(ev["id"])
        docs.insert({"_id": ev["id"], "kind": "seen"})
        if ev["id"] == events[1]["id"]:
            docs.count({"kind": "seen"})           # a query over what this batch wrote

    events = [event() for _ in range(4)]
    worker = EventWorker(Settings(namespace="unit"), "beta", {"report.submitted": counting}, store=store)
    FakeMessage.log = []
    for tag, ev in enumerate(events, start=1):
        worker.on_message(FakeMessage(ev, tag))
    assert order == [events[0]["id"], events[1]["id"]]   # the third and fourth wait, not handled out of order
    worker._finish_batch()
    assert order == [ev["id"] for ev in events[:2]] + [ev["id"] for ev in events[1:]]
    assert FakeMessage.log == [("ack", 4, True)] and worker.handled == 4
    assert sorted(d["_id"] for d in docs.find()) == sorted(ev["id"] for ev in events)


def test_a_buffered_batch_that_meets_a_concurrent_change_is_handled_again_in_a_transaction_and_stored_once(store):
    docs = store.collection("handled")
    events = [event() for _ in range(3)]
    other = SQLiteStore(store.path).collection("handled")
    worker = EventWorker(Settings(namespace="unit"), "beta", {"report.submitted": recording_handler(docs)},
                         store=store)
    FakeMessage.log = []
    for tag, ev in enumerate(events, start=1):
        worker.on_message(FakeMessage(ev, tag))
    other.insert({"_id": events[1]["id"], "by": "the other worker"})   # the same event, handled elsewhere first
    worker._finish_batch()
    assert FakeMessage.log == [("ack", 3, True)] and worker.handled == 3
    stored = {d["_id"]: d for d in docs.find()}
    assert set(stored) == {ev["id"] for ev in events} and stored[events[1]["id"]]["by"] == "the other worker"


def test_a_buffered_batch_whose_commit_fails_is_sent_back_whole(store, monkeypatch):
    docs = store.collection("handled")
    worker = EventWorker(Settings(namespace="unit"), "beta", {"report.submitted": recording_handler(docs)},
                         store=store)
    FakeMessage.log = []
    for tag in (1, 2):
        worker.on_message(FakeMessage(event(), tag))

    def broken(_buffer):
        raise OSError("disk I/O error")
    monkeypatch.setattr(store, "_commit_buffer", broken)
    worker._finish_batch()
    assert FakeMessage.log == [("requeue", 1), ("requeue", 2)] and docs.find() == []


def test_a_redelivered_message_is_handled_alone_after_the_batch_in_hand_is_stored(store):
    """One that came back (its worker died holding it, or its handler failed) is stored and acked
    on its own, so if it kills the worker it is not held with others (the quorum queue counts a
    delivery against every unacked message a dying worker held)."""
    docs = store.collection("handled")
    counting = CountingStore(store)
    worker = EventWorker(Settings(namespace="unit"), "beta", {"report.submitted": recording_handler(docs)},
                         store=counting)
    FakeMessage.log = []
    fresh = [FakeMessage(event(), tag) for tag in (1, 2)]
    back = FakeMessage(event(), 3)
    back.headers = {"x-delivery-count": 1}
    for message in fresh:
        worker.on_message(message)
    assert FakeMessage.log == []                       # a batch in hand
    worker.on_message(back)
    assert FakeMessage.log == [("ack", 2, True), ("ack", 3, True)] and counting.commits == 2
    assert worker.in_flight == 0 and len(docs.find()) == 3
    flagged = FakeMessage(event(), 4)
    flagged.delivery_info = {"redelivered": True}     # a broker without the count header says so instead
    worker.on_message(flagged)
    assert FakeMessage.log[-1] == ("ack", 4, True) and worker.in_flight == 0


def test_a_consumer_starts_one_message_at_a_time_and_widens_at_the_first_fresh_message(amqp_url, names):
    """After a restart the messages a dead worker held come first, redelivered: taken one at a time,
    a worker that dies again holds only one of them. The first message never delivered before
    widens the window (cancel, prefetch, consume again), and everything is handled once."""
    from tests.integration.test_messaging_amqp import Recorder, run_worker
    from shared.messaging.publish import PikaPublisher

    handler = Recorder()
    worker, thread = run_worker(amqp_url, names, "beta", handler)
    assert worker._careful
    events = [event() for _ in range(50)]
    PikaPublisher(amqp_url, names.exchange).publish(events)
    assert wait_for(lambda: len(handler.seen) == 50)
    assert not worker._careful and sorted(handler.seen) == sorted(e["id"] for e in events)
    assert wait_for(lambda: queue_depth(amqp_url, names.queue("beta")) == 0)
    worker.should_stop = True
    thread.join(10)
