"""The broker link (shared/messaging/link.py): a service that cannot reach RabbitMQ at start keeps
running and declares again in the background with back-off; it attaches its consumers once, when
the broker answers. (The whole story over a real broker and gunicorn: tests/e2e/test_broker_away.py.)"""
from __future__ import annotations

from shared.messaging.link import BACKOFF_MAX, BrokerLink, backoff
from shared.runtime import ready


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


# -- readiness (shared.runtime.ready): the broker counts until reached once, then it is only reported --

AWAY = {"store.intake": True, "schema.intake": True, "broker": False, "consumer.intake": False, "relay": True}


def test_a_process_that_never_reached_the_broker_is_not_ready():
    # A wrong SANZHANG_AMQP_URL in a rollout: the new pods stay out of rotation, the rollout stalls.
    assert ready(AWAY, broker_reached=False) == (False, [])


def test_once_reached_a_lost_broker_keeps_the_pod_ready_and_says_what_waits():
    assert ready(AWAY, broker_reached=True) == (True, ["broker", "consumer.intake"])
    assert ready({**AWAY, "broker": True, "consumer.intake": True}, broker_reached=True) == (True, [])


def test_the_store_and_the_relay_count_whatever_the_broker():
    assert ready({**AWAY, "store.intake": False}, broker_reached=True) == (False, ["broker", "consumer.intake"])
    assert ready({**AWAY, "schema.intake": False}, broker_reached=True)[0] is False
    assert ready({**AWAY, "relay": False}, broker_reached=True)[0] is False


def test_the_embedded_bus_has_no_link_and_every_check_counts():
    checks = {"store.intake": True, "consumer.intake": False, "relay": True}
    assert ready(checks, broker_reached=None) == (False, [])
