"""The process's composition: stores, broker, relay, consumers and HTTP for the chosen services.

``Runtime(settings, ["intake", "dispatch", "escalation", "notify"])`` is the embedded default when
the broker URL is memory://; the same object with one service name is a service on its own.
Nothing connects until ``start()`` — gunicorn forks before it is called.
"""
from __future__ import annotations

import importlib
import logging
import threading
from typing import Iterable

from .aggregates import Waker
from .auth import Authenticator, TokenIssuer
from . import personal
from .clock import Clock, SystemClock
from .config import Settings
from .messaging.consume import EventWorker
from .messaging.publish import KombuPublisher, PikaPublisher
from .messaging.relay import OutboxRelay
from .messaging.topology import Names, declare_amqp, declare_memory, kombu_entities
from .service import Context, ServiceParts
from .storage import open_store

log = logging.getLogger(__name__)

SERVICES = ("intake", "dispatch", "escalation", "notify")


def memory_url(url: str) -> str:
    # kombu warns about a missing host on a bare memory:// URL; the host means nothing there.
    return "memory://localhost/" if url.rstrip("/") == "memory:" else url


class Runtime:
    def __init__(self, settings: Settings, services: Iterable[str] = SERVICES, clock: Clock | None = None,
                 consume: bool = True):
        self.settings = settings
        self.clock = clock or SystemClock()
        self.names = Names(settings.namespace)
        self.waker = Waker()
        self.issuer = TokenIssuer(settings.secret) if settings.secret else None
        personal.configure(settings.secret, settings.previous_secret)
        self.authenticator = Authenticator(settings.admin_token, self.issuer)
        self.stores = {}
        self.parts: list[ServiceParts] = []
        for name in services:
            if name not in SERVICES:
                raise ValueError(f"unknown service {name}")
            store = open_store(settings, name)
            self.stores[name] = store
            module = importlib.import_module(f"services.{name}.bootstrap")
            ctx = Context(settings=settings, clock=self.clock, store=store, waker=self.waker, issuer=self.issuer)
            self.parts.append(module.build(ctx))
        for parts in self.parts:
            for resolver in parts.api.get("auth_resolvers", []):
                self.authenticator.resolvers.append(resolver)
        self.consume = consume
        self.workers: list[EventWorker] = []
        self._threads: list[threading.Thread] = []
        self.relay: OutboxRelay | None = None
        self._memory_conn = None
        self.started = False

    def service(self, name: str) -> ServiceParts:
        return next(p for p in self.parts if p.name == name)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "Runtime":
        if self.started:
            return self
        publisher = self._broker()
        repos = [r for p in self.parts for r in p.repos]
        self.relay = OutboxRelay(repos, publisher, self.clock, self.waker, poll=self.settings.outbox_poll)
        self.relay.start()
        if self.consume:
            for parts in self.parts:
                if parts.handlers:
                    worker = EventWorker(self.settings, parts.name, parts.handlers)
                    thread = threading.Thread(target=worker.run, name=f"consumer-{parts.name}", daemon=True)
                    thread.start()
                    self.workers.append(worker)
                    self._threads.append(thread)
            for worker in self.workers:
                worker.attached.wait(timeout=10)
        for parts in self.parts:
            for task in parts.tasks:
                task.start()
        self._register_gauges()
        self.started = True
        return self

    def _register_gauges(self) -> None:
        from .metrics import GAUGES

        relay = self.relay
        GAUGES.add("sanzhang_outbox_backlog", "Events stored but not yet confirmed by the broker", [],
                   lambda: [({}, relay.backlog())])
        for parts in self.parts:
            for name, (doc, labels, source) in parts.api.get("gauges", {}).items():
                GAUGES.add(name, doc, labels, source)

    def _broker(self):
        if self.settings.embedded:
            from kombu import Connection

            self._memory_conn = Connection(memory_url(self.settings.amqp_url))
            declare_memory(self._memory_conn, self.names)
            exchange, _, _ = kombu_entities(self.names)
            return KombuPublisher(self._memory_conn, exchange)
        declare_amqp(self.settings.amqp_url, self.names, self.settings.max_deliveries)
        return PikaPublisher(self.settings.amqp_url, self.names.exchange, self.settings.confirm_timeout)

    def stop(self) -> None:
        """Graceful: no new messages, finish the ones in hand, flush the outbox, close."""
        for parts in self.parts:
            for task in parts.tasks:
                task.stop()
        for worker in self.workers:
            worker.should_stop = True
        for thread in self._threads:
            thread.join(timeout=10)
        for worker in self.workers:
            # Unacked prefetched messages go back to the queue for another replica.
            worker.connection.release()
        if self.relay:
            self.relay.stop(flush=True)
            self.relay.publisher.close()
        for store in self.stores.values():
            store.close()
        self.started = False

    # -- health ---------------------------------------------------------------------------------
    def readiness(self) -> dict[str, bool]:
        checks = {f"store.{name}": store.ping() for name, store in self.stores.items()}
        # Ready only once every table/index this process declared is in place (issue 15).
        checks.update({f"schema.{name}": store.schema_ready() for name, store in self.stores.items()})
        if self.consume:
            for worker in self.workers:
                checks[f"consumer.{worker.service}"] = worker.attached.is_set()
        checks["relay"] = bool(self.relay and self.relay._thread and self.relay._thread.is_alive())
        return checks

    def drain(self, timeout: float = 10.0) -> bool:
        """Test helper: waits until the outbox is empty and every consumer is idle."""
        import time

        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            self.relay.flush(timeout=max(0.1, deadline - time.monotonic()))
            busy = any(w.in_flight for w in self.workers) or self._queued()
            quiet = 0 if busy else quiet + 1
            if quiet >= 3:
                return True
            time.sleep(0.05)
        return False

    def _queued(self) -> bool:
        if not self.settings.embedded:
            return False
        from kombu.transport.memory import Channel

        return any(Channel.queues.get(self.names.queue(w.service)) is not None
                   and Channel.queues[self.names.queue(w.service)].qsize() for w in self.workers)
