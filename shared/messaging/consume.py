"""The consuming side: decode, validate, hand to the service's handler, ack only after it stored its work.

Handlers are idempotent (they remember the event ids they applied), so the at-least-once
delivery of the broker never doubles an effect. A message that cannot be decoded is dead-lettered
at once; one whose handler keeps failing is retried a bounded number of times, then dead-lettered.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

from kombu import Connection, Consumer, Queue
from kombu.mixins import ConsumerMixin
from marshmallow import ValidationError

from ..events import load_event
from .. import faults
from ..logs import correlation_id
from ..metrics import DEAD_LETTERED, EVENTS_CONSUMED, HANDLER_SECONDS
from .topology import Names

log = logging.getLogger(__name__)

Handler = Callable[[dict], None]


class PoisonMessage(Exception):
    pass


class Dispatcher:
    """Transport-free core: turns a raw body into a handler call. Tested without a broker."""

    def __init__(self, service: str, handlers: dict[str, Handler], metrics=None):
        self.service = service
        self.handlers = handlers
        self.metrics = metrics

    def decode(self, body: bytes | str) -> dict:
        try:
            raw = json.loads(body)
            if not isinstance(raw, dict):
                raise PoisonMessage("envelope is not an object")
            return load_event(raw)
        except (ValueError, ValidationError) as exc:
            raise PoisonMessage(str(exc)) from exc

    def handle(self, event: dict) -> None:
        handler = self.handlers.get(event["type"])
        if handler is None:
            # Bound by a wildcard but not needed: nothing to do, and nothing wrong.
            return
        token = correlation_id.set(event.get("correlation_id"))
        try:
            handler(event)
        finally:
            correlation_id.reset(token)


class EventWorker(ConsumerMixin):
    """One consumer thread for one service queue; kombu's mixin reconnects after broker loss."""

    def __init__(self, settings, service: str, handlers: dict[str, Handler], *, prefetch: int = 32,
                 on_ready: Callable[[], None] | None = None):
        self.settings = settings
        self.service = service
        self.names = Names(settings.namespace)
        self.dispatcher = Dispatcher(service, handlers)
        self.prefetch = prefetch
        # RabbitMQ only: the embedded run consumes its SQLite inbox with embedded_consume.BusWorker.
        self.connection = Connection(settings.amqp_url, heartbeat=30, transport_options={"polling_interval": 0.01})
        self.attached = threading.Event()
        self._attempts: dict[str, int] = {}
        self._on_ready = on_ready
        self.in_flight = 0
        self.handled = 0
        self.failed = 0

    # kombu's ConsumerMixin hooks ---------------------------------------------------------------
    def get_consumers(self, consumer_cls, channel):
        queue = Queue(self.names.queue(self.service), no_declare=True)
        # on_message receives the raw message: kombu's own decoding would ack and drop a body it
        # cannot parse, and a poison message must reach the dead-letter queue instead.
        return [consumer_cls(queues=[queue], on_message=self.on_message, accept=None,
                             prefetch_count=self.prefetch)]

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self.attached.set()
        if self._on_ready:
            self._on_ready()

    def on_connection_error(self, exc, interval):
        self.attached.clear()
        log.warning("broker connection lost (%s); retrying in %ss", exc.__class__.__name__, interval)

    # message handling -----------------------------------------------------------------------
    def on_decode_error(self, message, exc) -> None:
        self._dead_letter(message, reason=f"undecodable: {exc}")

    def on_message(self, message) -> None:
        self.in_flight += 1
        try:
            self._process(message)
        finally:
            self.in_flight -= 1

    def _process(self, message) -> None:
        try:
            event = self.dispatcher.decode(message.body)
        except PoisonMessage as exc:
            log.error("poison message on %s: %s", self.service, exc)
            self._dead_letter(message, reason=f"undecodable: {exc}")
            self.failed += 1
            return
        started = time.perf_counter()
        try:
            self.dispatcher.handle(event)
        except Exception:
            EVENTS_CONSUMED.labels(self.service, event["type"], "error").inc()
            self.failed += 1
            attempts = self._count_attempt(message, event["id"])
            log.exception("handler failed for %s (attempt %s)", event["type"], attempts,
                          extra={"event_id": event["id"], "event_type": event["type"],
                                 "correlation_id": event.get("correlation_id")})
            # The quorum queue counts deliveries and dead-letters past its limit.
            time.sleep(min(0.05 * attempts, 1.0))
            message.requeue()
            return
        self._attempts.pop(event["id"], None)
        faults.hit("handled")
        message.ack()
        HANDLER_SECONDS.labels(self.service, event["type"]).observe(time.perf_counter() - started)
        EVENTS_CONSUMED.labels(self.service, event["type"], "ok").inc()
        self.handled += 1

    def _count_attempt(self, message, event_id: str) -> int:
        header = (message.headers or {}).get("x-delivery-count")
        if header is not None:
            return int(header) + 1
        self._attempts[event_id] = self._attempts.get(event_id, 0) + 1
        return self._attempts[event_id]

    def _dead_letter(self, message, reason: str) -> None:
        DEAD_LETTERED.labels(self.service, reason.split(":")[0]).inc()
        message.reject(requeue=False)  # the queue's dead-letter exchange takes it
