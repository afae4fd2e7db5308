"""The messaging foundations on the real RabbitMQ: topology, confirms, mandatory routing, dead letters."""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from datetime import datetime, timezone

import pika
import pytest

from shared.config import Settings
from shared.events import make_event
from shared.messaging.consume import EventWorker
from shared.messaging.publish import PikaPublisher, PublishError, PublishTimeout, Unroutable
from shared.messaging.topology import Names, declare_amqp, delete_amqp

SUBS = {"alpha": ("case.*",), "beta": ("report.submitted",)}
AT = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def names(amqp_url):
    n = Names("t" + uuid.uuid4().hex[:10])
    declare_amqp(amqp_url, n, max_deliveries=2, subscriptions=SUBS)
    yield n
    delete_amqp(amqp_url, n, subscriptions=SUBS)


def event(type_="report.submitted", **payload):
    body = {"report_id": uuid.uuid4().hex, "tracking_no": "ABCD2345", "category": "road", "tier": None,
            "description": "路面塌陷", "channel": "phone", "submitted_at": "2026-11-02T01:00:00.000000Z"}
    body.update(payload)
    return make_event(type_, "430382100", body, at=AT, correlation_id=body["report_id"])


def queue_depth(url, name) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(name, passive=True).method.message_count
    finally:
        conn.close()


def get_all(url, name) -> list:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    out = []
    try:
        ch = conn.channel()
        while True:
            method, props, body = ch.basic_get(name, auto_ack=True)
            if method is None:
                return out
            out.append((props, body))
    finally:
        conn.close()


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_topology_declares_quorum_queues_with_dead_lettering(amqp_url, names):
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        # Redeclaring with the same arguments succeeds; different ones would close the channel.
        from shared.messaging.topology import queue_arguments
        ch.queue_declare(names.queue("alpha"), durable=True, arguments=queue_arguments(names, "alpha", 2))
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            ch.queue_declare(names.queue("alpha"), durable=True, arguments={"x-queue-type": "classic"})
        assert exc.value.reply_code == 406
    finally:
        conn.close()
    declare_amqp(amqp_url, names, max_deliveries=2, subscriptions=SUBS)  # idempotent


def test_confirmed_batch_reaches_the_bound_queue(amqp_url, names):
    pub = PikaPublisher(amqp_url, names.exchange, confirm_timeout=5)
    events = [event() for _ in range(250)]
    pub.publish(events)
    pub.close()
    received = get_all(amqp_url, names.queue("beta"))
    assert len(received) == 250
    props, body = received[0]
    assert props.delivery_mode == 2 and props.message_id == events[0]["id"]
    assert json.loads(body)["type"] == "report.submitted"


def test_publish_to_a_missing_binding_is_an_error_not_a_drop(amqp_url, names):
    pub = PikaPublisher(amqp_url, names.exchange, confirm_timeout=5)
    orphan = make_event("org.contacts_changed", "430382100", {"leads": []}, at=AT, correlation_id=None)
    with pytest.raises(Unroutable):
        pub.publish([event(), orphan])
    # The publisher recovers for the next batch.
    pub.publish([event()])
    pub.close()


def test_hung_broker_fails_within_the_confirm_timeout():
    """A server that accepts TCP and never speaks AMQP: publishing gives up, it does not hang."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    pub = PikaPublisher(f"amqp://guest:guest@127.0.0.1:{port}/%2F", "x", confirm_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(PublishError):
        pub.publish([event()])
    assert time.monotonic() - started < 5
    server.close()


class Recorder:
    def __init__(self, fail_times=0):
        self.seen = []
        self.fail_times = fail_times

    def __call__(self, ev):
        self.seen.append(ev["id"])
        if self.seen.count(ev["id"]) <= self.fail_times:
            raise RuntimeError("handler failed on purpose")


def run_worker(amqp_url, names, service, handler, max_deliveries=2):
    settings = Settings(amqp_url=amqp_url, namespace=names.namespace, max_deliveries=max_deliveries)
    worker = EventWorker(settings, service, {"report.submitted": handler})
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert worker.attached.wait(10)
    return worker, thread


def test_poison_message_goes_to_dead_letter_queue_while_the_rest_flow(amqp_url, names):
    handler = Recorder()
    worker, thread = run_worker(amqp_url, names, "beta", handler)
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.basic_publish(names.exchange, "report.submitted", b"{not json", pika.BasicProperties(delivery_mode=2))
    good = [event() for _ in range(20)]
    PikaPublisher(amqp_url, names.exchange).publish(good)
    conn.close()
    assert wait_for(lambda: len(handler.seen) == 20)
    assert wait_for(lambda: queue_depth(amqp_url, names.dead_queue("beta")) == 1)
    worker.should_stop = True
    thread.join(10)
    dead = get_all(amqp_url, names.dead_queue("beta"))
    assert dead[0][1] == b"{not json"


def test_failing_handler_is_retried_a_bounded_number_of_times_then_dead_lettered(amqp_url, names):
    handler = Recorder(fail_times=100)  # always fails
    worker, thread = run_worker(amqp_url, names, "beta", handler, max_deliveries=2)
    bad = event()
    PikaPublisher(amqp_url, names.exchange).publish([bad])
    assert wait_for(lambda: queue_depth(amqp_url, names.dead_queue("beta")) == 1)
    worker.should_stop = True
    thread.join(10)
    # First delivery plus x-delivery-limit (2) redeliveries, then the broker dead-letters it.
    assert handler.seen.count(bad["id"]) == 3
    props, body = get_all(amqp_url, names.dead_queue("beta"))[0]
    assert json.loads(body)["id"] == bad["id"]
    assert props.headers["x-death"][0]["reason"] == "delivery_limit"


def test_transient_failure_is_retried_and_then_acked(amqp_url, names):
    handler = Recorder(fail_times=1)
    worker, thread = run_worker(amqp_url, names, "beta", handler, max_deliveries=3)
    ev = event()
    PikaPublisher(amqp_url, names.exchange).publish([ev])
    assert wait_for(lambda: handler.seen.count(ev["id"]) == 2)
    worker.should_stop = True
    thread.join(10)
    assert queue_depth(amqp_url, names.queue("beta")) == 0
    assert queue_depth(amqp_url, names.dead_queue("beta")) == 0
