"""The unit of work: one document, its new events (the outbox) and the ids of events it has applied.

MongoDB gives atomicity per document, so state, outgoing events and the idempotency record
travel in the same document and are written by one compare-and-set. The relay publishes the
outbox afterwards; a crash between the two leaves the events in the document to be sent later.
"""
from __future__ import annotations

import copy
import threading
from typing import Callable, Iterable

from . import faults
from .clock import Clock, iso
from .metrics import count_stored
from .storage import Collection, Index, VersionConflict

OUTBOX_INDEXES = (Index.on("outbox_due"),)
SEEN_LIMIT = 200
MAX_RETRIES = 50


class NotFound(Exception):
    pass


class Unchanged(Exception):
    """Raised by a mutation that decides nothing needs writing."""


class Aggregates:
    """A repository over one collection whose documents carry an outbox."""

    def __init__(self, collection: Collection, clock: Clock, wake: Callable[[], None] | None = None):
        self.collection = collection
        self.clock = clock
        self._wake = wake or (lambda: None)

    def _stage(self, doc: dict, events: Iterable[dict]) -> bool:
        events = list(events)
        if events:
            doc.setdefault("outbox", []).extend(events)
            doc["outbox_due"] = iso(self.clock.now())
        return bool(events)

    def add(self, doc: dict, events: Iterable[dict] = ()) -> dict:
        doc = dict(doc)
        events = list(events)
        doc.setdefault("outbox", [])
        doc.setdefault("outbox_due", None)
        doc.setdefault("seen", [])
        staged = self._stage(doc, events)
        stored = self.collection.insert(doc)
        faults.hit("stored")
        if staged:
            count_stored(events)
            self._wake()
        return stored

    def get(self, doc_id: str) -> dict | None:
        return self.collection.get(doc_id)

    def mutate(self, doc_id: str, change: Callable[[dict], Iterable[dict] | None],
               *, applying: str | None = None) -> dict:
        """Load, apply ``change`` to a copy, store with compare-and-set; retry when another writer won.

        ``applying`` is the id of the event being handled: a document that has seen it is returned
        unchanged, which makes a redelivered event a no-op.
        """
        for _ in range(MAX_RETRIES):
            current = self.collection.get(doc_id)
            if current is None:
                raise NotFound(doc_id)
            if applying and applying in current.get("seen", []):
                return current
            doc = copy.deepcopy(current)
            try:
                events = list(change(doc) or ())
            except Unchanged:
                return current
            if applying:
                doc["seen"] = (doc.get("seen", []) + [applying])[-SEEN_LIMIT:]
            staged = self._stage(doc, events)
            try:
                stored = self.collection.replace(doc, current["version"], previous=current)
            except VersionConflict:
                continue
            faults.hit("stored")
            if staged:
                count_stored(events)
                self._wake()
            return stored
        raise VersionConflict(f"gave up on {doc_id} after {MAX_RETRIES} conflicts")

    def take_published(self, doc_id: str, event_ids: set[str], claimed: dict | None = None) -> None:
        """Drop events the broker confirmed; the document's other changes are kept.

        ``claimed`` is the document as the relay's claim returned it: when nobody wrote it since,
        one compare-and-set clears it without reading it again (the common case)."""
        def drop(doc: dict):
            before = doc.get("outbox", [])
            doc["outbox"] = [e for e in before if e["id"] not in event_ids]
            if len(doc["outbox"]) == len(before) and not before and doc.get("outbox_due") is None:
                raise Unchanged
            # Events staged meanwhile stay due now; an empty outbox leaves the relay's index.
            doc["outbox_due"] = iso(self.clock.now()) if doc["outbox"] else None
            return ()

        if claimed is not None:
            doc = copy.deepcopy(claimed)
            try:
                drop(doc)
                self.collection.replace(doc, claimed["version"], previous=claimed)
                return
            except Unchanged:
                return
            except VersionConflict:
                pass  # written since the claim: merge with what is there now
        try:
            self.mutate(doc_id, drop)
        except NotFound:
            pass

    def take_published_all(self, claimed: list[dict]) -> None:
        """``take_published`` for every document of a relay's claim, in one transaction: one commit
        per claim instead of one per document (issue 16). If it fails, nothing is dropped and the
        events go out again: consumers are idempotent."""
        with self.collection.transaction():
            for doc in claimed:
                self.take_published(doc["_id"], {e["id"] for e in doc.get("outbox", [])}, claimed=doc)


class Waker:
    """Lets a write in this process wake the relay at once instead of at its next sweep."""

    def __init__(self):
        self.event = threading.Event()

    def __call__(self) -> None:
        self.event.set()

    def wait(self, timeout: float) -> None:
        self.event.wait(timeout)
        self.event.clear()
