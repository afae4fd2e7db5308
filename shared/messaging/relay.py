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
from typing import Callable

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
# Failed publishes in a row wait longer each time (the broker is away): RETRY_AFTER doubling, at most this.
MAX_RETRY_AFTER = timedelta(seconds=10)
# After a sweep that published, the relay waits this long before the next one. Woken by every
# write, it otherwise swept for one or two events at a time under load — a claim, a publish with
# its confirm wait and a clear each — and took the GIL from the requests each time: 20 ms cut the
# intake workers' CPU per accepted report by about a fifth (bench_intake, issue 16). The first
# event after a quiet spell still goes out at once.
LINGER = 0.02


class OutboxRelay:
    def __init__(self, repos: list[Aggregates], publisher: Publisher, clock: Clock, waker: Waker,
                 poll: float = 0.2, batch: int = 500, lease: timedelta = LEASE, linger: float = LINGER,
                 ready: Callable[[], bool] | None = None):
        self.repos = repos
        # False while the broker has never been reached (messaging/link.py): nothing is claimed, the
        # events wait in the outboxes as they are, and go out on the first sweep once it is true.
        self.ready = ready or (lambda: True)
        # Failed publishes in a row; the retry waits longer with each (RETRY_AFTER .. MAX_RETRY_AFTER).
        self.failing = 0
        self.linger = linger
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
        if not self.ready():
            return sent
        for repo in self.repos:
            while True:
                now = self.clock.now()
                # Only the outboxes: decoding whole claimed documents was most of the relay's cost (issue 16).
                docs = repo.collection.claim_due("outbox_due", iso(now), iso(now + self.lease), self.batch,
                                                 fields=("outbox",))
                if not docs:
                    break
                events = [e for d in docs for e in d.get("outbox") or ()]
                try:
                    self.publisher.publish(events)
                except PublishError as exc:
                    self.failures += 1
                    self.failing += 1
                    PUBLISH_FAILURES.labels(exc.__class__.__name__).inc()
                    retry = min(MAX_RETRY_AFTER, RETRY_AFTER * 2 ** (self.failing - 1))
                    log.warning("outbox publish failed, will retry in %ss: %s", retry.total_seconds(), exc)
                    self._release(repo, docs, now + retry)
                    return sent
                self.failing = 0
                # Confirmed, not yet cleared: a crash here publishes the batch again, same event ids
                # (the fault tests' "published" point, as docs/testing.md describes it).
                faults.hit("published")
                repo.take_all_published(docs)  # one statement for the batch
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
            if not self.ready():
                return False   # never reached the broker: the events stay in the outboxes for the next start
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
            sent = 0
            try:
                sent = self.run_once()
            except Exception:
                log.exception("outbox relay sweep failed")
            if sent and self.linger:
                # Busy: let the next batch gather instead of sweeping again for each new write.
                self._stop.wait(self.linger)
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
