"""A background loop that claims documents whose due time has come and works on them.

Timers are data: the due time is an indexed field, a claim moves it forward by a lease (so one
replica fires it, and another takes over if that one dies), and the work decides the next due
time. Used for SLA timers, report resends and follow-ups.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Callable

from .clock import Clock, iso, parse_iso
from .storage import Collection

log = logging.getLogger(__name__)

MIN_PAUSE = 0.05  # seconds


class DueSweeper:
    def __init__(self, name: str, collection: Collection, field: str, work: Callable[[dict], None],
                 clock: Clock, *, poll: float = 1.0, lease: timedelta = timedelta(seconds=60), batch: int = 200,
                 work_batch: Callable[[list[dict]], dict[str, Exception]] | None = None,
                 at_due: bool = False):
        self.name = name
        self.collection = collection
        self.field = field
        self.work = work
        # A whole claim at once (returns the failures by id): one write for the batch (issue 16).
        self.work_batch = work_batch
        self.clock = clock
        self.poll = poll
        self.lease = lease
        self.batch = batch
        # Sleep until the earliest due time when it comes before the next poll: a burst due at one
        # instant starts then, not up to a poll later (one indexed look-up per sweep).
        self.at_due = at_due
        self.fired = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        fired = 0
        while True:
            now = self.clock.now()
            docs = self.collection.claim_due(self.field, iso(now), iso(now + self.lease), self.batch)
            fired += self._batch(docs) if self.work_batch and docs else self._each(docs)
            if len(docs) < self.batch:
                break
        self.fired += fired
        return fired

    def _each(self, docs: list[dict]) -> int:
        fired = 0
        for doc in docs:
            try:
                self.work(doc)
                fired += 1
            except Exception:
                # The lease expires and the next sweep (here or in another replica) retries.
                log.exception("%s: work on %s failed", self.name, doc.get("_id"))
        return fired

    def _batch(self, docs: list[dict]) -> int:
        try:
            failed = self.work_batch(docs)
        except Exception:
            # Nothing of the batch may be stored: the leases expire and the claims come again.
            log.exception("%s: work on a batch of %d failed", self.name, len(docs))
            return 0
        for doc_id, exc in failed.items():
            log.error("%s: work on %s failed", self.name, doc_id, exc_info=exc)
        return len(docs) - len(failed)

    def next_due(self) -> str | None:
        """The earliest due time waiting (ISO text), or None: lets a virtual clock jump to it."""
        # Due times are ISO text, so ``>= ""`` is "set" — a range an index serves on every adapter,
        # where ``$ne: None`` is a collection scan on some MongoDB servers (SecantusDB) and this runs
        # before every sweep of the SLA timers (at_due).
        docs = self.collection.find({self.field: {"$gte": ""}}, sort=[(self.field, 1)], limit=1,
                                    fields=[self.field])
        return docs[0][self.field] if docs else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._pause()):
            try:
                self.run_once()
            except Exception:
                log.exception("%s sweep failed", self.name)

    def _pause(self) -> float:
        """Seconds until the next sweep: the poll, or less when something comes due sooner."""
        if not self.at_due:
            return self.poll
        try:
            due = self.next_due()
        except Exception:  # noqa: BLE001 - the store is away: the sweep itself will say so
            return self.poll
        if due is None:
            return self.poll
        # A floor keeps a clock that stands still (tests) from spinning on a due time just ahead.
        return min(self.poll, max((parse_iso(due) - self.clock.now()).total_seconds(), MIN_PAUSE))

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
