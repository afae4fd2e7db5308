"""The consuming side: decode, validate, hand to the service's handler, ack only after it stored its work.

Handlers are idempotent (they remember the event ids they applied), so the at-least-once
delivery of the broker never doubles an effect. A message that cannot be decoded is dead-lettered
at once; one whose handler keeps failing is retried a bounded number of times, then dead-lettered.

Messages are handled in batches (consume_batch.py): those already waiting on the socket, up to
``batch`` of them or ``max_wait`` seconds, are stored by one commit and acked together after it
(issue 16: one commit and one ack per batch instead of per message); on SQLite their handlers run
outside the write lock, which is taken only for the commit.

A consumer starts careful: it takes one message at a time (prefetch 1) until the first message
that was never delivered before, then widens its window; and a message the broker delivers again
(it came back from a worker that died, or was sent back after its handler failed) is handled alone
and acked at once. Why: the quorum queue counts a delivery against *every* unacked message a dying
worker held, and dead-letters a message past its limit. Restarted with a full window of the dead
worker's messages and batches of them, a worker that died a few times in a row (another message's
fault) sent innocent messages to the dead-letter queue — a report never became a case (the fault
suite's crash storm caught it). Careful, a restarted worker dies holding only the message it is
handling, so only a message that itself keeps killing the worker reaches the limit.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable

from kombu import Connection, Consumer, Queue
from kombu.mixins import ConsumerMixin
from marshmallow import ValidationError

from ..events import load_event
from .. import faults
from .. import jsontext
from ..logs import correlation_id
from ..metrics import DEAD_LETTERED, EVENTS_CONSUMED, HANDLER_SECONDS
from ..storage import BufferConflict, NeedsTransaction
from .consume_batch import Batch
from .topology import Names

log = logging.getLogger(__name__)

Handler = Callable[[dict], None]


def _tag(message) -> int:
    """A message's delivery tag: the order the broker delivered it in on this channel."""
    return message.delivery_tag


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
            raw = jsontext.loads(body)
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

    def __init__(self, settings, service: str, handlers: dict[str, Handler], *, store=None, batch: int = 32,
                 max_wait: float = 0.05, on_ready: Callable[[], None] | None = None):
        self.settings = settings
        self.service = service
        self.names = Names(settings.namespace)
        self.dispatcher = Dispatcher(service, handlers)
        # The service's store: a batch's handlers write inside one of its transactions.
        self.store = store
        self.batch_size = max(1, batch)
        self.max_wait = max_wait
        # Twice the batch: the next batch's messages arrive while this one commits and acks.
        self.prefetch = max(32, 2 * self.batch_size)
        self._batch: Batch | None = None
        # False once the loop has left: kombu's cancel at the end may still hand over messages, and
        # a batch opened then would never be committed — its transaction would hold the write lock.
        self._accepting = True
        # RabbitMQ only: the embedded run consumes its SQLite inbox with embedded_consume.BusWorker.
        self.connection = Connection(settings.amqp_url, heartbeat=30, transport_options={"polling_interval": 0.01})
        self.attached = threading.Event()
        self._attempts: dict[str, int] = {}
        self._on_ready = on_ready
        # One message at a time (prefetch 1) from the start: the window widens at the first message
        # delivered for the first time (see the module's doc).
        self._careful = True
        self._widen = False   # asked for by the first fresh message, done between messages
        self._consumers: list = []
        self._handling = 0
        self.handled = 0
        self.failed = 0

    # kombu's ConsumerMixin hooks ---------------------------------------------------------------
    def get_consumers(self, consumer_cls, channel):
        queue = Queue(self.names.queue(self.service), no_declare=True)
        # on_message receives the raw message: kombu's own decoding would ack and drop a body it
        # cannot parse, and a poison message must reach the dead-letter queue instead.
        return [consumer_cls(queues=[queue], on_message=self.on_message, accept=None,
                             prefetch_count=1 if self._careful else self.prefetch)]

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self._consumers = list(consumers)
        self.attached.set()
        if self._on_ready:
            self._on_ready()

    def on_connection_error(self, exc, interval):
        self.attached.clear()
        log.warning("broker connection lost (%s); retrying in %ss", exc.__class__.__name__, interval)

    def consume(self, limit=None, timeout=None, safety_interval=1, **kwargs):
        """kombu's loop, with batches: while one is open, only messages already here are taken
        (a zero wait); when none is, or it is full or old, it is committed and acked."""
        self._accepting = True  # before the context: messages may arrive while it subscribes
        # A (re)connection starts careful: what the last connection held comes back redelivered.
        self._careful, self._widen = True, False
        try:
            with self.consumer_context(**kwargs) as (conn, _channel, _consumers):
                try:
                    yield from self._batches(conn, safety_interval)
                finally:
                    self._accepting = False
                    self._abandon_batch()
        finally:  # also when subscribing failed after a message had opened a batch
            self._accepting = False
            self._abandon_batch()

    def _batches(self, conn, safety_interval: float):
        while not self.should_stop:
            try:
                conn.drain_events(timeout=0 if self._batch is not None else safety_interval)
            except socket.timeout:
                if self._widen:
                    self._widen_window()
                if self._batch is not None:
                    self._finish_batch()
                else:
                    conn.heartbeat_check()
                continue
            except OSError:
                if not self.should_stop:
                    raise
                break
            if self._widen:
                self._widen_window()
            if self._batch is not None and self._batch.due(self.batch_size, self.max_wait):
                self._finish_batch()
            yield
        if self._batch is not None:
            self._finish_batch()  # stopping: what was handled is stored and acked

    # message handling -----------------------------------------------------------------------
    def on_decode_error(self, message, exc) -> None:
        self._dead_letter(message, reason=f"undecodable: {exc}")

    @property
    def in_flight(self) -> int:
        """Messages in a handler or handled in a batch not yet committed and acked."""
        return self._handling + (len(self._batch) if self._batch is not None else 0)

    def on_message(self, message) -> None:
        if not self._accepting:
            return  # left unacked: back to the queue when the channel closes
        self._handling += 1
        try:
            self._process(message)
        finally:
            self._handling -= 1

    def _process(self, message) -> None:
        try:
            event = self.dispatcher.decode(message.body)
        except PoisonMessage as exc:
            log.error("poison message on %s: %s", self.service, exc)
            self._dead_letter(message, reason=f"undecodable: {exc}")
            self.failed += 1
            return
        if self._redelivered(message):
            self._alone(message, event)
            return
        if self._careful:
            self._widen = True   # a first delivery: the redelivered ones are through
        if self._batch is None and not self._open_batch(message):
            return
        if self._batch.later:
            self._batch.later.append((message, event))  # after one that needs the transaction: in order
            return
        self._handle(self._batch, message, event)

    def _open_batch(self, message) -> bool:
        try:
            self._batch = Batch.open(self.store)
            return True
        except Exception:  # the store is unwell (locked past its timeout, gone): try it again later
            log.exception("%s: cannot open a transaction; the message goes back to the queue", self.service)
            time.sleep(0.5)
            message.requeue()
            return False

    @staticmethod
    def _delivery_count(message) -> int | None:
        """The quorum queue's count of earlier deliveries (absent on a first delivery)."""
        return (getattr(message, "headers", None) or {}).get("x-delivery-count")

    def _redelivered(self, message) -> bool:
        return bool(self._delivery_count(message)) or bool(
            (getattr(message, "delivery_info", None) or {}).get("redelivered"))

    def _alone(self, message, event: dict) -> None:
        """A redelivered message: the batch in hand is stored and acked first, then this one is
        handled in a batch of its own, stored and acked at once — if it kills the worker, it is not
        held with others. (The window is not narrowed again once wide: a cancel then would find
        messages still on their way to the old consumer, which the client library sends back,
        counted as deliveries.)"""
        if self._batch is not None:
            self._finish_batch()
        if self._open_batch(message):
            self._handle(self._batch, message, event)
            self._finish_batch()

    def _widen_window(self) -> None:
        """From one message at a time to the full window, while the first fresh message is still
        unsettled in its batch: with prefetch 1 the broker can send nothing more to the old consumer
        meanwhile, so nothing is in flight when it is cancelled (a delivery arriving after the
        cancel would be sent back by the client library and counted). Then the consumers consume
        again with the new prefetch (RabbitMQ applies a consumer's prefetch when it starts)."""
        self._widen = False
        for consumer in self._consumers:
            consumer.cancel()
            consumer.qos(prefetch_count=self.prefetch)
            consumer.consume()
        self._careful = False
        log.info("%s: consuming up to %s at a time", self.service, self.prefetch)

    def _handle(self, batch: Batch, message, event: dict) -> None:
        started = time.perf_counter()
        try:
            with batch.unit(self.store):
                self.dispatcher.handle(event)
        except Exception as exc:
            if isinstance(exc, NeedsTransaction) and batch.buffered:
                # Not in a buffered unit: this message and the rest of the batch wait for its commit.
                batch.later.append((message, event))
                return
            EVENTS_CONSUMED.labels(self.service, event["type"], "error").inc()
            self.failed += 1
            attempts = self._count_attempt(message, event["id"])
            log.exception("handler failed for %s (attempt %s)", event["type"], attempts,
                          extra={"event_id": event["id"], "event_type": event["type"],
                                 "correlation_id": event.get("correlation_id")})
            batch.retry.append((message, attempts))
            return
        self._attempts.pop(event["id"], None)
        batch.done.append((message, event, time.perf_counter() - started))

    def _finish_batch(self) -> None:
        """Commit, then settle: failed messages back to the queue first, so that the one
        ``ack multiple`` of the last handled message acks exactly the handled ones."""
        batch, self._batch = self._batch, None
        messages = batch.messages
        try:
            self._commit(batch)
        except Exception:
            log.exception("%s: storing a batch of %d failed; it goes back to the queue", self.service, len(messages))
            for message in messages:
                message.requeue()
            return
        for message, attempts in sorted(batch.retry, key=lambda item: _tag(item[0])):
            # The quorum queue counts deliveries and dead-letters past its limit.
            time.sleep(min(0.05 * attempts, 1.0))
            message.requeue()
        if not batch.done:
            return
        for _ in batch.done:  # each message's work is stored and not acked: the fault suite's point, per message
            faults.hit("handled")
        max(batch.done, key=lambda item: _tag(item[0]))[0].ack(multiple=True)
        for _message, event, seconds in batch.done:
            HANDLER_SECONDS.labels(self.service, event["type"]).observe(seconds)
            EVENTS_CONSUMED.labels(self.service, event["type"], "ok").inc()
        self.handled += len(batch.done)

    def _commit(self, batch: Batch) -> None:
        """The batch's commit; then, inside one transaction, what had to wait for it — or, if the
        buffered commit found something changed since it was read, the whole batch again."""
        redo = batch.later
        try:
            batch.commit()
        except BufferConflict as exc:
            log.info("%s: a batch of %d met a concurrent change (%s); handled again in a transaction",
                     self.service, len(batch.done), exc)
            redo = [(message, event) for message, event, _ in batch.done] + batch.later
            batch.done = []
        batch.later = []
        if not redo:
            return
        locked = Batch.open_transaction(self.store)
        for message, event in redo:
            self._handle(locked, message, event)
        locked.commit()  # failing, it raises: the caller sends every message of the batch back
        batch.done += locked.done
        batch.retry += locked.retry

    def _abandon_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.abandon()

    def _count_attempt(self, message, event_id: str) -> int:
        header = self._delivery_count(message)
        if header is not None:
            return int(header) + 1
        self._attempts[event_id] = self._attempts.get(event_id, 0) + 1
        return self._attempts[event_id]

    def _dead_letter(self, message, reason: str) -> None:
        DEAD_LETTERED.labels(self.service, reason.split(":")[0]).inc()
        message.reject(requeue=False)  # the queue's dead-letter exchange takes it
