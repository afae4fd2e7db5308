"""The broker's shape: one topic exchange, one quorum queue per consuming service, dead letters.

On RabbitMQ the topology is declared with pika, because quorum queues need arguments
(x-queue-type, x-delivery-limit, dead-lettering) that must match on every redeclaration; the
kombu consumers then attach to those queues without declaring them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

# Which event types each service consumes: {service: event types}. The composition root derives it
# from the handlers each service declares (shared.runtime.bindings), so an event a service handles is
# always bound. Every event type that is published must be bound somewhere: publishing is mandatory,
# so a missing binding is an error, not a silent drop.
Subscriptions = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Names:
    namespace: str

    @property
    def exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dead_exchange(self) -> str:
        return f"{self.namespace}.dlx"

    def queue(self, service: str) -> str:
        return f"{self.namespace}.{service}"

    def dead_queue(self, service: str) -> str:
        return f"{self.namespace}.{service}.dead"


def queue_arguments(names: Names, service: str, max_deliveries: int) -> dict:
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": names.dead_exchange,
        "x-dead-letter-routing-key": service,
        # The broker counts redeliveries and dead-letters past the limit: bounded retries
        # survive consumer crashes, which a counter in the consumer would not.
        "x-delivery-limit": max_deliveries,
    }


def declare_amqp(url: str, names: Names, max_deliveries: int, subscriptions: Subscriptions,
                 timeout: float | None = None) -> None:
    """``timeout`` bounds the connection's handshake (a broker that hangs, not one that refuses)."""
    import pika

    subs = subscriptions
    params = pika.URLParameters(url)
    if timeout is not None:
        params.connection_attempts = 1
        params.socket_timeout = timeout
        params.stack_timeout = timeout
        params.blocked_connection_timeout = timeout
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.exchange_declare(names.exchange, exchange_type="topic", durable=True)
        ch.exchange_declare(names.dead_exchange, exchange_type="direct", durable=True)
        for service, keys in subs.items():
            ch.queue_declare(names.queue(service), durable=True,
                             arguments=queue_arguments(names, service, max_deliveries))
            ch.queue_declare(names.dead_queue(service), durable=True, arguments={"x-queue-type": "quorum"})
            ch.queue_bind(names.dead_queue(service), names.dead_exchange, routing_key=service)
            for key in keys:
                ch.queue_bind(names.queue(service), names.exchange, routing_key=key)
    finally:
        conn.close()


def delete_amqp(url: str, names: Names, subscriptions: Subscriptions) -> None:
    """Removes a namespace's exchanges and queues (tests use a namespace each)."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        for service in subscriptions:
            ch.queue_delete(names.queue(service))
            ch.queue_delete(names.dead_queue(service))
        ch.exchange_delete(names.exchange)
        ch.exchange_delete(names.dead_exchange)
    finally:
        conn.close()
