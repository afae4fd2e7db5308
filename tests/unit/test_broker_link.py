"""The broker link (shared/messaging/link.py): a service that cannot reach RabbitMQ at start keeps
running and declares again in the background with back-off; it attaches its consumers once, when
the broker answers. (The whole story over a real broker and gunicorn: tests/e2e/test_broker_away.py.)"""
from __future__ import annotations

from shared.messaging.link import BACKOFF_MAX, BrokerLink, backoff


def test_back_off_doubles_from_half_a_second_up_to_its_cap():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff(50) == BACKOFF_MAX


def test_a_failed_declaration_is_no_failure_and_on_ready_comes_once_it_succeeds():
    attempts, ready = [], []

    def declare():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError(111, "Connection refused")

    link = BrokerLink(declare, lambda: ready.append(1))
    assert link.try_once() is False and link.try_once() is False
    assert not link.ready() and ready == [] and link.failures == 2
    assert link.try_once() is True
    assert link.ready() and ready == [1] and link.failures == 0
