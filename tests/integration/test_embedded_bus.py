"""The embedded bus (shared/messaging/embedded_bus.py) on its own: routing, one row per consumer
and event, exclusive claims across processes, a dead owner's rows redelivered at once, bounded
deliveries (a crash counts as one) and the dead table."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest

from shared import personal
from shared.clock import FakeClock
from shared.config import Settings
from shared.events import make_event
from shared.messaging.embedded_bus import EmbeddedBus, topic_matches
from shared.messaging.embedded_consume import BusPublisher, BusWorker
from shared.messaging.publish import Unroutable
from tests.support.cluster import ROOT
from tests.support.runtime import SECRET

SUBS = {"alpha": ("report.*",), "beta": ("report.submitted",), "gamma": ("org.#",)}


@pytest.fixture(autouse=True)
def sealed():
    # Phone numbers inside events are sealed, as every runtime configures it: dead letters hold none.
    personal.configure(SECRET, None)


@pytest.fixture
def clock():
    return FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc))


def open_bus(tmp_path, clock) -> EmbeddedBus:
    return EmbeddedBus(tmp_path / "t_bus.db", SUBS, clock)


def event() -> dict:
    report_id = uuid.uuid4().hex
    return make_event("report.submitted", "430382100", {
        "report_id": report_id, "tracking_no": "ABCD2345", "category": "road", "tier": None,
        "description": "路面塌陷", "channel": "phone", "reporter_phone": "13912345678",
        "submitted_at": "2026-11-02T01:00:00.000000Z"}, at=datetime(2026, 11, 2, tzinfo=timezone.utc),
        correlation_id=report_id)


def test_topic_patterns_follow_amqp():
    assert topic_matches("case.*", "case.assigned")
    assert not topic_matches("case.*", "case.assigned.again")
    assert not topic_matches("case.*", "case")
    assert topic_matches("org.#", "org") and topic_matches("org.#", "org.contacts.changed")
    assert not topic_matches("report.submitted", "report.rated")


def test_one_row_per_bound_consumer_and_none_for_a_waiting_duplicate(tmp_path, clock):
    bus = open_bus(tmp_path, clock)
    e = event()
    BusPublisher(bus).publish([e])
    BusPublisher(bus).publish([e])  # the relay re-publishes after a crash before clearing its outbox
    assert bus.pending_by_consumer() == {"alpha": 1, "beta": 1}
    with pytest.raises(Unroutable):
        BusPublisher(bus).publish([{**event(), "type": "nobody.listens"}])
    assert bus.pending() == 2  # all or nothing: the unroutable batch added no row
    bus.close()


def test_claims_are_exclusive_and_done_deletes(tmp_path, clock):
    one, two = open_bus(tmp_path, clock), open_bus(tmp_path, clock)  # two processes on one data folder
    events = [event() for _ in range(3)]
    BusPublisher(one).publish(events)
    got = [one.claim("beta"), two.claim("beta"), one.claim("beta"), two.claim("beta")]
    assert [d.message_id for d in got[:3]] == [e["id"] for e in events] and got[3] is None
    one.reap(), two.reap()  # both owners live: nothing is taken from either
    assert two.claim("beta") is None
    for d, bus in zip(got[:3], (one, two, one)):
        bus.done(d)
    assert one.pending("beta") == 0 and one.pending("alpha") == 3
    one.close(), two.close()


CLAIM_AND_HANG = """
import sys, time
from shared.clock import SystemClock
from shared.messaging.embedded_bus import EmbeddedBus
bus = EmbeddedBus(sys.argv[1], {"alpha": ("report.*",), "beta": ("report.submitted",), "gamma": ("org.#",)}, SystemClock())
print(bus.claim("beta").message_id, flush=True)
time.sleep(60)
"""


def test_rows_of_a_killed_process_are_redelivered_at_once(tmp_path, clock):
    bus = open_bus(tmp_path, clock)
    e = event()
    BusPublisher(bus).publish([e])
    proc = subprocess.Popen([sys.executable, "-c", CLAIM_AND_HANG, str(bus.path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == e["id"]
        bus.reap()
        assert bus.claim("beta") is None  # the other process lives and holds it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    started = time.monotonic()
    again = open_bus(tmp_path, clock)  # a restart: opening the bus frees the dead owner's rows
    delivery = again.claim("beta")
    assert delivery is not None and delivery.message_id == e["id"] and delivery.deliveries == 2
    assert time.monotonic() - started < 1.0
    assert list((tmp_path / "t_bus.owners").glob("*.lock")) != []  # the live owners' files only
    again.close(), bus.close()


def test_close_gives_unfinished_rows_back(tmp_path, clock):
    one = open_bus(tmp_path, clock)
    BusPublisher(one).publish([event()])
    assert one.claim("beta") is not None
    one.close()
    two = open_bus(tmp_path, clock)
    assert two.claim("beta").deliveries == 2
    two.close()


def run_worker(bus: EmbeddedBus, handlers: dict, max_deliveries: int = 3) -> tuple[BusWorker, threading.Thread]:
    settings = Settings(max_deliveries=max_deliveries, outbox_poll=0.02)
    worker = BusWorker(settings, bus, "beta", handlers)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread


def wait_for(fn, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.02)
    return False


def test_a_failing_handler_is_dead_lettered_after_bounded_deliveries(tmp_path, clock):
    bus = open_bus(tmp_path, clock)
    calls = []

    def fails(evt):
        calls.append(evt["id"])
        raise RuntimeError("boom")

    worker, thread = run_worker(bus, {"report.submitted": fails})
    e = event()
    BusPublisher(bus).publish([e])
    try:
        assert wait_for(lambda: bus.dead_by_consumer().get("beta") == 1)
    finally:
        worker.should_stop = True
        thread.join(5)
    assert calls == [e["id"]] * 3
    [dead] = bus.dead("beta")
    assert dead["message_id"] == e["id"] and dead["reason"] == "failed 3 times: RuntimeError"
    assert json.loads(dead["body"])["id"] == e["id"] and bus.pending("beta") == 0
    bus.close()


def test_a_message_that_kills_its_process_each_time_is_dead_lettered_too(tmp_path, clock):
    """Deliveries are counted when claimed, so crashes count: after max_deliveries claims that ended
    with no outcome, the next one moves it to the dead table without handling it again."""
    bus = open_bus(tmp_path, clock)
    e = event()
    BusPublisher(bus).publish([e])
    for _ in range(3):  # three processes died handling it (close() stands for the reaper here)
        dying = open_bus(tmp_path, clock)
        assert dying.claim("beta") is not None
        dying.close()
    handled = []
    worker, thread = run_worker(bus, {"report.submitted": handled.append})
    try:
        assert wait_for(lambda: bus.dead_by_consumer().get("beta") == 1)
    finally:
        worker.should_stop = True
        thread.join(5)
    assert handled == []
    assert bus.dead("beta")[0]["reason"] == "delivered 3 times without an outcome"
    bus.close()


def test_poison_goes_to_the_dead_table_at_once_and_good_messages_flow(tmp_path, clock):
    bus = open_bus(tmp_path, clock)
    handled = []
    worker, thread = run_worker(bus, {"report.submitted": lambda evt: handled.append(evt["id"])})
    good = event()
    bus.append([("report.submitted", "poison", "{broken")])
    BusPublisher(bus).publish([good])
    try:
        assert wait_for(lambda: handled == [good["id"]] and bus.pending("beta") == 0)
    finally:
        worker.should_stop = True
        thread.join(5)
    [dead] = bus.dead("beta")
    assert dead["message_id"] == "poison" and dead["reason"].startswith("undecodable") and dead["deliveries"] == 1
    bus.close()


def test_sanzhang_bus_lists_what_waits_and_what_is_dead(tmp_path, clock, capsys, monkeypatch):
    from shared.cli import main

    bus = EmbeddedBus(tmp_path / "sanzhang_bus.db", SUBS, clock)
    bus.append([("report.submitted", "poison", "{broken")])
    bus.dead_letter(bus.claim("beta"), "undecodable: test")
    monkeypatch.setenv("SANZHANG_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SANZHANG_NAMESPACE", raising=False)
    assert main(["bus"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["pending"] == {"alpha": 1} and shown["dead"] == {"beta": 1}
    assert shown["dead_letters"][0]["reason"] == "undecodable: test" and "body" not in shown["dead_letters"][0]
    bus.close()
