"""Publishing to and consuming from the embedded bus (embedded_bus.py): the same contract as the
RabbitMQ path — mandatory routing, work stored before the message is let go, bounded deliveries,
poison to the dead table — over the SQLite inbox instead of a broker."""
from __future__ import annotations

import logging
import sqlite3
import threading
import time

from .. import faults
from .. import jsontext
from ..metrics import DEAD_LETTERED, EVENTS_CONSUMED, HANDLER_SECONDS
from .consume import Dispatcher, Handler, PoisonMessage
from .embedded_bus import Delivery, EmbeddedBus
from .publish import PublishError

log = logging.getLogger(__name__)


def _body(event: dict) -> str:
    return jsontext.dumps(event)


class BusPublisher:
    """The relay's publisher in the embedded run: a publish is confirmed once the inbox rows are
    committed, so the outbox is cleared only after every bound service has the event durably."""

    def __init__(self, bus: EmbeddedBus):
        self.bus = bus

    def publish(self, events: list[dict]) -> None:
        if not events:
            return
        try:
            self.bus.append([(e["type"], e["id"], _body(e)) for e in events])
        except sqlite3.Error as exc:  # a locked or full disk: the relay keeps the events and retries
            raise PublishError(f"embedded bus append failed: {exc}") from exc
        faults.hit("published")

    def close(self) -> None:
        pass


class BusWorker:
    """One consumer thread for one service: claim the oldest row, handle it, delete it."""

    def __init__(self, settings, bus: EmbeddedBus, service: str, handlers: dict[str, Handler],
                 poll: float | None = None):
        self.settings = settings
        self.bus = bus
        self.service = service
        self.dispatcher = Dispatcher(service, handlers)
        self.poll = poll if poll is not None else max(settings.outbox_poll, 0.05)
        self.attached = threading.Event()
        self.should_stop = False
        self.in_flight = 0
        self.handled = 0
        self.failed = 0

    def run(self) -> None:
        self.attached.set()
        while not self.should_stop:
            try:
                delivery = self.bus.claim(self.service)
            except sqlite3.Error as exc:
                log.warning("embedded bus claim failed for %s: %s", self.service, exc)
                time.sleep(self.poll)
                continue
            if delivery is None:
                self.bus.wait(self.service, self.poll)
                continue
            self.in_flight += 1
            try:
                self._process(delivery)
            except sqlite3.Error as exc:  # the row stays ours until close() or our death frees it
                log.warning("embedded bus bookkeeping failed for %s: %s", self.service, exc)
                self._give_back(delivery)
            finally:
                self.in_flight -= 1

    def run_pending(self) -> int:
        """Handles every message waiting for this service, on the caller's thread (the simulator's
        stepped runtime); returns how many deliveries were processed."""
        processed = 0
        while (delivery := self.bus.claim(self.service)) is not None:
            self._process(delivery)
            processed += 1
        return processed

    def _give_back(self, delivery: Delivery) -> None:
        try:
            self.bus.release(delivery)
        except sqlite3.Error:
            pass  # freed when this process ends

    def _process(self, delivery: Delivery) -> None:
        limit = self.settings.max_deliveries
        if delivery.deliveries > limit:
            # Earlier deliveries ended with no outcome at all: the process died handling it.
            self._dead(delivery, f"delivered {delivery.deliveries - 1} times without an outcome")
            return
        try:
            event = self.dispatcher.decode(delivery.body)
        except PoisonMessage as exc:
            log.error("poison message on %s: %s", self.service, exc)
            self.failed += 1
            self._dead(delivery, f"undecodable: {exc}")
            return
        started = time.perf_counter()
        try:
            self.dispatcher.handle(event)
        except Exception as exc:
            EVENTS_CONSUMED.labels(self.service, event["type"], "error").inc()
            self.failed += 1
            log.exception("handler failed for %s (attempt %s)", event["type"], delivery.deliveries,
                          extra={"event_id": event["id"], "event_type": event["type"],
                                 "correlation_id": event.get("correlation_id")})
            if delivery.deliveries >= limit:
                self._dead(delivery, f"failed {delivery.deliveries} times: {exc.__class__.__name__}")
            else:
                time.sleep(min(0.05 * delivery.deliveries, 1.0))
                self.bus.release(delivery)
            return
        faults.hit("handled")
        self.bus.done(delivery)
        HANDLER_SECONDS.labels(self.service, event["type"]).observe(time.perf_counter() - started)
        EVENTS_CONSUMED.labels(self.service, event["type"], "ok").inc()
        self.handled += 1

    def _dead(self, delivery: Delivery, reason: str) -> None:
        DEAD_LETTERED.labels(self.service, reason.split(":")[0].split(" ")[0]).inc()
        self.bus.dead_letter(delivery, reason)
