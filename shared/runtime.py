"""The process's composition: stores, broker, relay, consumers and HTTP for the chosen services.

``Runtime(settings, ["intake", "dispatch", "escalation", "notify"])`` is the embedded default when
the broker URL is memory://: the bus is then the durable SQLite inbox of messaging/embedded_bus.py
in the data folder. The same object with one service name is a service on its own over RabbitMQ.
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
from .domain import localtime
from .messaging.consume import EventWorker
from .messaging.embedded_bus import EmbeddedBus
from .messaging.embedded_consume import BusPublisher, BusWorker
from .messaging.link import BrokerLink
from .messaging.publish import PikaPublisher
from .messaging.relay import EMBEDDED_LEASE, LEASE, OutboxRelay
from .messaging.topology import Names, declare_amqp
from .service import Context, ServiceParts
from .storage import open_store
from .storage.sqlite_checkpoint import CHECKPOINTER

log = logging.getLogger(__name__)

SERVICES = ("intake", "dispatch", "escalation", "notify")


def _bootstrap(name: str):
    # Services are found by name, not imported: shared/ never depends on a service's code.
    return importlib.import_module(f"services.{name}.bootstrap")


def bindings(services: Iterable[str] = SERVICES) -> dict[str, tuple[str, ...]]:
    """Each service's queue bindings: exactly the event types its composition root declares it
    handles (``HANDLES``). Every queue is declared by every process, so a service that is not
    running still receives what it handles."""
    return {name: tuple(sorted(_bootstrap(name).HANDLES)) for name in services}


def check_handlers(parts: ServiceParts, handles: frozenset[str]) -> None:
    """A handler map must match the declaration its bindings come from: an event handled but not
    bound would never arrive, one bound but not handled would be consumed for nothing."""
    unbound, unhandled = set(parts.handlers) - handles - parts.retired, handles - set(parts.handlers)
    if unbound or unhandled:
        raise RuntimeError(f"{parts.name}: handlers and HANDLES disagree: handled but not declared "
                           f"{sorted(unbound)}, declared but not handled {sorted(unhandled)}")


BROKER_CHECKS = ("broker", "consumer.")


def ready(checks: dict[str, bool], broker_reached: bool | None) -> tuple[bool, list[str]]:
    """The readiness verdict (Kubernetes' readiness probe) from the checks, and the failing checks it
    waives. Every check counts until the broker has been reached once by this process: a pod that
    never reached it (a wrong SANZHANG_AMQP_URL in a rollout) stays out of rotation, so a bad rollout
    stalls instead of replacing the good pods. After that, a lost broker (``broker`` and the
    ``consumer.<service>`` checks) no longer makes the pod unready: people keep reporting, signing in
    and acting — their writes go to the store and its outbox — and only the messages wait. The JSON
    and ``sanzhang_broker_connected`` still say the broker is away."""
    waived = [name for name, ok in checks.items()
              if not ok and broker_reached and name.startswith(BROKER_CHECKS)]
    return all(ok for name, ok in checks.items() if name not in waived), waived


class Runtime:
    def __init__(self, settings: Settings, services: Iterable[str] = SERVICES, clock: Clock | None = None,
                 consume: bool = True):
        self.settings = settings
        # Before any service is built: their settings and schedules read the local zone.
        localtime.configure(settings.timezone)
        self.clock = clock or SystemClock()
        self.names = Names(settings.namespace)
        self.waker = Waker()
        self.issuer = TokenIssuer(settings.secret) if settings.secret else None
        personal.configure(settings.secret, settings.previous_secret)
        self.authenticator = Authenticator(settings.admin_token, self.issuer, self.clock)
        self.stores = {}
        self.parts: list[ServiceParts] = []
        for name in services:
            if name not in SERVICES:
                raise ValueError(f"unknown service {name}")
            store = open_store(settings, name)
            self.stores[name] = store
            module = _bootstrap(name)
            ctx = Context(settings=settings, clock=self.clock, store=store, waker=self.waker, issuer=self.issuer)
            parts = module.build(ctx)
            check_handlers(parts, module.HANDLES)
            self.parts.append(parts)
        for parts in self.parts:
            for resolver in parts.api.get("auth_resolvers", []):
                self.authenticator.resolvers.append(resolver)
            self.authenticator.session_checks.extend(parts.api.get("session_checks", []))
        self.consume = consume
        self.workers: list[EventWorker | BusWorker] = []
        self._threads: list[threading.Thread] = []
        self.relay: OutboxRelay | None = None
        self.bus: EmbeddedBus | None = None
        self.link: BrokerLink | None = None   # RabbitMQ only: declares and attaches, now or once it answers
        self._attaching = threading.Lock()
        self._stopping = False
        self.started = False

    def service(self, name: str) -> ServiceParts:
        return next(p for p in self.parts if p.name == name)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "Runtime":
        if self.started:
            return self
        CHECKPOINTER.start()   # this process's SQLite logs copied beside its writers (issue 16)
        publisher = self._broker()
        repos = [r for p in self.parts for r in p.repos]
        # Embedded, a publish is a local SQLite commit of milliseconds: a short lease lets the events
        # of a relay killed mid-publish go out again within seconds of the restart.
        lease = EMBEDDED_LEASE if self.bus else LEASE
        self.relay = OutboxRelay(repos, publisher, self.clock, self.waker, poll=self.settings.outbox_poll,
                                 lease=lease, ready=self.link.ready if self.link else None)
        self.relay.start()
        if self.link is None:
            self._attach_consumers()
        elif not self.link.try_once():
            # RabbitMQ is away: serve without it (accepted work waits in the outboxes); the link
            # declares the topology and attaches the consumers once it answers (messaging/link.py).
            self.link.start()
        for parts in self.parts:
            for task in parts.tasks:
                task.start()
        self._warm_up()
        self._register_gauges()
        self.started = True
        return self

    def _attach_consumers(self) -> None:
        """A consumer per service with handlers; waits (a little) until each is attached. Called at
        start, or by the broker link's thread once the broker answers."""
        if not self.consume:
            return
        with self._attaching:
            if self._stopping:
                return
            for parts in self.parts:
                if parts.handlers:
                    worker = (BusWorker(self.settings, self.bus, parts.name, parts.handlers) if self.bus
                              else EventWorker(self.settings, parts.name, parts.handlers,
                                               store=self.stores[parts.name] if parts.batch_in_transaction else None,
                                               batch=self.settings.consume_batch))
                    thread = threading.Thread(target=worker.run, name=f"consumer-{parts.name}", daemon=True)
                    thread.start()
                    self.workers.append(worker)
                    self._threads.append(thread)
        for worker in self.workers:
            worker.attached.wait(timeout=10)
        self.waker()   # the relay: what waited in the outboxes goes out now

    def _warm_up(self) -> threading.Thread | None:
        """Runs the services' warm-ups in one background thread; a failure is logged, never fatal
        (the first request then pays the cost, as before)."""
        jobs = [job for p in self.parts for job in p.warm_ups]
        if not jobs:
            return None

        def run() -> None:
            for job in jobs:
                try:
                    job()
                except Exception:  # noqa: BLE001 - a warm-up is an optimisation only
                    log.warning("warm-up %s failed", getattr(job, "__qualname__", job), exc_info=True)

        thread = threading.Thread(target=run, name="warm-up", daemon=True)
        thread.start()
        return thread

    def _register_gauges(self) -> None:
        from .metrics import GAUGES

        relay = self.relay
        GAUGES.add("sanzhang_outbox_backlog", "Events stored but not yet confirmed by the broker", [],
                   lambda: [({}, relay.backlog())])
        bus = self.bus
        if bus is not None:
            # The embedded bus's queue depths, as RabbitMQ shows its queues' and <service>.dead's.
            GAUGES.add("sanzhang_bus_pending", "Events waiting in the embedded bus for a service", ["service"],
                       lambda: [({"service": s}, n) for s, n in bus.pending_by_consumer().items()])
            GAUGES.add("sanzhang_bus_dead", "Dead-lettered events in the embedded bus, per service", ["service"],
                       lambda: [({"service": s}, n) for s, n in bus.dead_by_consumer().items()])
        if self.link is not None:
            # 0 while the broker is away (readiness stays 200 once it was reached: only messages wait).
            names = [p.name for p in self.parts]
            GAUGES.add("sanzhang_broker_connected",
                       "1 while the broker answers this process for the service (topology declared, last "
                       "publish confirmed, consumer attached), 0 otherwise", ["service"],
                       lambda: [({"service": n}, int(self.broker_connected(n))) for n in names])
        for parts in self.parts:
            for name, (doc, labels, source) in parts.api.get("gauges", {}).items():
                GAUGES.add(name, doc, labels, source)

    def _broker(self):
        if self.settings.embedded:
            # Opening the bus frees the rows a killed predecessor held: they are redelivered at once.
            self.bus = EmbeddedBus(self.settings.data_dir / f"{self.settings.namespace}_bus.db", bindings(),
                                   self.clock, self.settings.sqlite_sync)
            return BusPublisher(self.bus)
        self.link = BrokerLink(lambda: declare_amqp(self.settings.amqp_url, self.names, self.settings.max_deliveries,
                                                    bindings(), timeout=self.settings.confirm_timeout),
                               self._attach_consumers)
        return PikaPublisher(self.settings.amqp_url, self.names.exchange, self.settings.confirm_timeout)

    def stop(self) -> None:
        """Graceful: no new messages, finish the ones in hand, flush the outbox, close."""
        with self._attaching:
            self._stopping = True
        if self.link:
            self.link.stop()
        for parts in self.parts:
            for task in parts.tasks:
                task.stop()
        for worker in self.workers:
            worker.should_stop = True
            if self.bus:
                self.bus.wake(worker.service)
        for thread in self._threads:
            thread.join(timeout=10)
        for worker in self.workers:
            if not self.bus:
                # Unacked prefetched messages go back to the queue for another replica.
                worker.connection.release()
        if self.relay:
            self.relay.stop(flush=True)
            self.relay.publisher.close()
        if self.bus:
            self.bus.close()
        for store in self.stores.values():
            store.close()
        self.started = False

    # -- health ---------------------------------------------------------------------------------
    def readiness(self) -> dict[str, bool]:
        checks = {f"store.{name}": store.ping() for name, store in self.stores.items()}
        # Ready only once every table/index this process declared is in place (issue 15).
        checks.update({f"schema.{name}": store.schema_ready() for name, store in self.stores.items()})
        if self.link:
            # The broker: reached (topology declared) and the last publish, if any, confirmed.
            checks["broker"] = self.link.ready() and not (self.relay and self.relay.failing)
        if self.consume:
            for worker in self.workers:
                checks[f"consumer.{worker.service}"] = worker.attached.is_set()
            if self.link and not self.link.ready():
                for parts in self.parts:   # not attached yet: waiting for the broker
                    if parts.handlers:
                        checks[f"consumer.{parts.name}"] = False
        checks["relay"] = bool(self.relay and self.relay._thread and self.relay._thread.is_alive())
        return checks

    def broker_reached(self) -> bool | None:
        """The topology has been declared at least once since this process started (None: no
        RabbitMQ link, the embedded bus)."""
        return self.link.ready() if self.link else None

    def broker_connected(self, service: str) -> bool:
        """As far as this process can tell, the broker answers for ``service``: reached, the last
        publish (if any) confirmed, and the service's consumer (if it has one) attached."""
        if not self.link:
            return True
        if not self.link.ready() or (self.relay and self.relay.failing):
            return False
        return all(w.attached.is_set() for w in self.workers if w.service == service)

    def drain(self, timeout: float = 10.0) -> bool:
        """Test helper: waits until the outbox is empty and every consumer is idle."""
        import time

        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            self.relay.flush(timeout=max(0.1, deadline - time.monotonic()))
            busy = any(w.in_flight for w in self.workers) or self._queued() or self.relay.moving()
            quiet = 0 if busy else quiet + 1
            if quiet >= 3:
                return True
            time.sleep(0.05)
        return False

    def _queued(self) -> bool:
        # On RabbitMQ the queues are the broker's; embedded, rows still in the inbox are work to do.
        return bool(self.bus) and any(self.bus.pending(w.service) for w in self.workers)

    # -- stepped (the simulator, sim/) ----------------------------------------------------------
    def start_stepped(self) -> "Runtime":
        """What start() builds for the embedded bus, but no thread: the caller moves events and
        timers with step() after each action and each move of its (virtual) clock."""
        if not self.settings.embedded:
            raise ValueError("the stepped runtime needs the embedded bus (memory://)")
        publisher = self._broker()
        repos = [r for p in self.parts for r in p.repos]
        self.relay = OutboxRelay(repos, publisher, self.clock, self.waker, poll=self.settings.outbox_poll,
                                 lease=EMBEDDED_LEASE)
        self.workers = [BusWorker(self.settings, self.bus, p.name, p.handlers) for p in self.parts if p.handlers]
        self.started = True
        return self

    def step(self, rounds: int = 100) -> int:
        """Relays every stored event, hands every waiting message to its service and fires every due
        timer, until nothing moves (at most ``rounds`` times); returns how many things were done."""
        total = 0
        for _ in range(rounds):
            moved = self.relay.run_once()
            moved += sum(w.run_pending() for w in self.workers)
            moved += sum(t.run_once() for p in self.parts for t in p.tasks if hasattr(t, "run_once"))
            total += moved
            if not moved:
                break
        return total

    def next_due(self) -> str | None:
        """The earliest time any timer of this process is due (ISO text), or None."""
        dues = [t.next_due() for p in self.parts for t in p.tasks if hasattr(t, "next_due")]
        return min((d for d in dues if d), default=None)
