"""The publisher's wait for confirms ends when the last one arrives, not at its time limit.

pika calls the confirm callback registered on the channel's ``_impl`` from inside
``process_data_events``, which is not an event the blocking connection waits for; the publisher
must schedule one (a zero-delay timer) so the wait ends at once (issue 16: every publish took
100 ms)."""
from __future__ import annotations

from types import SimpleNamespace

import pika

from shared.messaging.publish import PikaPublisher


class FakeConnection:
    def __init__(self):
        self.timers: list[float] = []

    def call_later(self, delay, callback):
        self.timers.append(delay)
        callback()


def _publisher(pending: dict[int, str]) -> tuple[PikaPublisher, FakeConnection]:
    pub = PikaPublisher("amqp://unused", "x")
    pub._conn = FakeConnection()
    pub._pending = dict(pending)
    return pub, pub._conn


def _frame(method) -> SimpleNamespace:
    return SimpleNamespace(method=method)


def test_the_wait_ends_when_the_last_confirm_arrives():
    pub, conn = _publisher({1: "a", 2: "b", 3: "c"})
    pub._on_confirm(_frame(pika.spec.Basic.Ack(delivery_tag=1)))
    assert conn.timers == [] and set(pub._pending) == {2, 3}
    pub._on_confirm(_frame(pika.spec.Basic.Ack(delivery_tag=3, multiple=True)))
    assert conn.timers == [0] and pub._pending == {}


def test_a_nack_ends_the_wait_too_and_is_reported():
    pub, conn = _publisher({1: "a", 2: "b"})
    pub._on_confirm(_frame(pika.spec.Basic.Nack(delivery_tag=2, multiple=True)))
    assert conn.timers == [0] and pub._nacked == {"a", "b"}


def test_enabling_confirms_ends_the_connect_wait():
    pub, conn = _publisher({})
    pub._on_select_ok(None)
    assert pub._select_ok and conn.timers == [0]
