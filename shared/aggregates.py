"""The unit of work: one document, its new events (the outbox) and the ids of events it has applied.

MongoDB gives atomicity per document, so state, outgoing events and the idempotency record
travel in the same document and are written by one compare-and-set. The relay publishes the
outbox afterwards; a crash between the two leaves the events in the document to be sent later.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable

from . import faults
from .clock import Clock, iso
from .metrics import count_stored
from .storage import Collection, Index, VersionConflict

OUTBOX_INDEXES = (Index.on("outbox_due"),)
SEEN_LIMIT = 200
MAX_RETRIES = 50


def copy_tree(value):
    """A deep copy of a stored document (dicts, lists and immutable leaves, as a store returns them):
    a seventh of copy.deepcopy's time, which was a tenth of an SLA sweep's (issue 16)."""
    kind = type(value)
    if kind is dict:
        return {k: copy_tree(v) for k, v in value.items()}
    if kind is list:
        return [copy_tree(v) for v in value]
    return value


class NotFound(Exception):
    pass


class Unchanged(Exception):
    """Raised by a mutation that decides nothing needs writing."""


class Aggregates:
    """A repository over one collection whose documents carry an outbox."""

    def __init__(self, collection: Collection, clock: Clock, wake: Callable[[], None] | None = None):
        self.collection = collection
        self.clock = clock
        wake = wake or (lambda: None)
        # Inside a buffered unit (SQLite) the relay is woken once the writes are committed: woken
        # before, it would find nothing and sleep a poll.
        after_commit = getattr(collection, "after_commit", None)
        self._wake = (lambda: after_commit(wake)) if after_commit else wake
        self._batch = threading.local()  # mutate_claimed's documents and writes, per thread

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
            current, claimed = self._read(doc_id)
            if current is None:
                raise NotFound(doc_id)
            if applying and applying in current.get("seen", []):
                return current
            if claimed:
                # A claim's own document, parsed for this batch alone: changed in place, with a
                # shallow copy as the stored version's record (its top-level values — the indexed
                # columns the write compares, the version — are replaced by a change, never edited
                # in place). The deep copy was a sixth of an SLA firing (issue 16).
                doc, current = current, dict(current)
                self._batch.originals[doc_id] = current
            else:
                doc = copy_tree(current)
            try:
                events = list(change(doc) or ())
            except Unchanged:
                return current
            if applying:
                doc["seen"] = (doc.get("seen", []) + [applying])[-SEEN_LIMIT:]
            staged = self._stage(doc, events)
            writes = getattr(self._batch, "writes", None)
            if writes is not None:  # mutate_claimed writes it with the others of its claim
                writes.append((doc, current, events if staged else []))
                return doc
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

    def _read(self, doc_id: str) -> tuple[dict | None, bool]:
        """The document, and whether it is one of mutate_claimed's (the batch's own, not shared)."""
        claimed = getattr(self._batch, "docs", None)
        if claimed and doc_id in claimed:
            return claimed.pop(doc_id), True  # as the claim returned it: nobody else may change it but by a write
        return self.collection.get(doc_id), False

    def mutate_claimed(self, claimed: list[dict], work: Callable[[dict], object]) -> dict[str, Exception]:
        """``work(doc)`` for each document a claim returned, where ``work`` calls ``self.mutate`` on it.

        A sweep's batch in one go (issue 16): each change starts from the document as the claim
        returned it (no second read) and all changes are written together — one transaction in
        SQLite — each still a compare-and-set on the version the claim left. A document written by
        someone else since the claim lost its compare-and-set; ``work`` runs again on it the
        ordinary way (read, change, compare-and-set, retry), so the concurrent change wins cleanly.
        Returns the failures by document id; the others are stored (or needed no change). If the
        store fails, nothing of the batch may be stored: the claims' leases bring them back."""
        failed: dict[str, Exception] = {}
        self._batch.docs, self._batch.writes = {doc["_id"]: doc for doc in claimed}, []
        # mutate changes a claimed document in place and keeps its top level as claimed here: a
        # document that loses its compare-and-set is worked on again from that (work reads the
        # claimed top-level fields, such as the timer it was claimed for; the rest comes from the store).
        self._batch.originals = originals = {}
        try:
            for doc in claimed:
                try:
                    work(doc)
                except Exception as exc:  # noqa: BLE001 - this document's lease brings it back
                    failed[doc["_id"]] = exc
        finally:
            writes, self._batch.docs, self._batch.writes = self._batch.writes, None, None
            self._batch.originals = None
        results = self.collection.replace_many([(doc, current["version"], current) for doc, current, _ in writes])
        lost = []
        for (doc, _, events), result in zip(writes, results):
            if isinstance(result, VersionConflict):
                lost.append(doc["_id"])
            elif isinstance(result, Exception):
                failed[doc["_id"]] = result
            else:
                faults.hit("stored")
                count_stored(events)
        if any(events for _, _, events in writes):
            self._wake()
        by_id = {doc["_id"]: doc for doc in claimed}
        for doc_id in lost:
            try:
                work(originals.get(doc_id) or by_id[doc_id])
            except Exception as exc:  # noqa: BLE001
                failed[doc_id] = exc
        return failed

    def take_published(self, doc_id: str, event_ids: set[str]) -> None:
        """Drop events the broker confirmed; the document's other changes are kept."""
        def drop(doc: dict):
            before = doc.get("outbox", [])
            doc["outbox"] = [e for e in before if e["id"] not in event_ids]
            if len(doc["outbox"]) == len(before) and not before and doc.get("outbox_due") is None:
                raise Unchanged
            # Events staged meanwhile stay due now; an empty outbox leaves the relay's index.
            doc["outbox_due"] = iso(self.clock.now()) if doc["outbox"] else None
            return ()

        try:
            self.mutate(doc_id, drop)
        except NotFound:
            pass

    def take_all_published(self, claimed: list[dict]) -> None:
        """Drop the outboxes the broker confirmed, for documents as the relay's claim returned them
        (``_id``, ``version``, ``outbox``). A document still at its claimed version holds exactly
        that outbox: one statement empties all of those. One written since the claim (a case event
        folded meanwhile) is merged with what is stored now, one by one, as take_published does."""
        if not claimed:
            return
        with self.collection.transaction():   # one commit for the claim (SQLite; a no-op on MongoDB)
            emptied = self.collection.patch_many([(d["_id"], d["version"]) for d in claimed],
                                                 {"outbox": [], "outbox_due": None})
            for doc in claimed:
                if doc["_id"] not in emptied:
                    self.take_published(doc["_id"], {e["id"] for e in doc.get("outbox") or ()})


class Waker:
    """Lets a write in this process wake the relay at once instead of at its next sweep."""

    def __init__(self):
        self.event = threading.Event()

    def __call__(self) -> None:
        self.event.set()

    def wait(self, timeout: float) -> None:
        self.event.wait(timeout)
        self.event.clear()
