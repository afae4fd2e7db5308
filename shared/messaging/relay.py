"""The outbox relay: claims documents with unpublished events, publishes them confirmed, drops them.

Any number of relays (one per process) may run: a claim pushes the document's ``outbox_due``
forward by a lease, so only one relay publishes it at a time; a relay that dies leaves the lease
to expire and another takes over. An event may be published twice (crash after confirm, before
the drop) — consumers are idempotent, so that is safe; it is never published zero times.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from ..aggregates import Aggregates, Waker
from ..clock import Clock, iso
from .. import faults
from ..metrics import EVENTS_PUBLISHED, PUBLISH_FAILURES
from .publish import PublishError, Publisher

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
# The embedded bus's publish is a local SQLite commit: a relay killed mid-publish holds its claim
# for this long, which bounds how soon after a restart those events go out again.
EMBEDDED_LEASE = timedelta(seconds=3)
RETRY_AFTER = timedelta(seconds=2)


class OutboxRelay:
    def __init__(self, repos: list[Aggregates], publisher: Publisher, clock: Clock, waker: Waker,
                 poll: float = 0.2, batch: int = 500, lease: timedelta = LEASE):
        self.repos = repos
        self.lease = lease
        self.publisher = publisher
        self.clock = clock
        self.waker = waker
        self.poll = poll
        self.batch = batch
        self.published = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def backlog(self) -> int:
        return sum(r.collection.count({"outbox_due": {"$ne": None}}) for r in self.repos)

    def moving(self) -> int:
        """Events due now, or claimed under a lease by a relay publishing them at this moment: what
        a drain must wait for. flush() alone cannot see a claimed event (its due time is pushed a
        lease ahead), so a drain that trusted it could end while another thread is mid-publish."""
        horizon = iso(self.clock.now() + self.lease)
        return sum(r.collection.count({"outbox_due": {"$lte": horizon}}) for r in self.repos)

    def run_once(self) -> int:
        """One sweep over every repository; returns how many events were published."""
        sent = 0
        for repo in self.repos:
            while True:
                now = self.clock.now()
                docs = repo.collection.claim_due("outbox_due", iso(now), iso(now + self.lease), self.batch)
                if not docs:
                    break
                events = [e for d in docs for e in d.get("outbox", [])]
                try:
                    self.publisher.publish(events)
                except PublishError as exc:
                    self.failures += 1
                    PUBLISH_FAILURES.labels(exc.__class__.__name__).inc()
                    log.warning("outbox publish failed, will retry: %s", exc)
                    self._release(repo, docs, now + RETRY_AFTER)
                    return sent
                repo.take_published_all(docs)
                faults.hit("published")
                for e in events:
                    EVENTS_PUBLISHED.labels(e["type"]).inc()
                sent += len(events)
                self.published += len(events)
                if len(docs) < self.batch:
                    break
        return sent

    def _release(self, repo: Aggregates, docs: list[dict], when) -> None:
        """Shortens the lease after a failed publish so the retry does not wait the whole lease."""
        def due_sooner(doc: dict):
            if doc.get("outbox"):
                doc["outbox_due"] = iso(when)
            return ()

        for doc in docs:
            try:
                repo.mutate(doc["_id"], due_sooner)
            except Exception:  # the lease will expire anyway
                pass

    def flush(self, timeout: float = 10.0) -> bool:
        """Publishes until nothing is due (graceful shutdown, tests)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.run_once()
            now = iso(self.clock.now())
            if all(r.collection.count({"outbox_due": {"$lte": now}}) == 0 for r in self.repos):
                return True
            time.sleep(0.05)
        return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="outbox-relay", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("outbox relay sweep failed")
            self.waker.wait(self.poll)

    def stop(self, flush: bool = True) -> None:
        self._stop.set()
        self.waker()
        if self._thread:
            self._thread.join(timeout=10)
        if flush:
            try:
                self.flush(timeout=5)
            except Exception:
                log.exception("final outbox flush failed")
