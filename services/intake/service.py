"""intake's use cases."""
from __future__ import annotations

import logging

from shared.aggregates import Aggregates, NotFound, Unchanged
from shared.clock import Clock, iso
from shared.domain import phones
from shared.metrics import REPORTS_RECEIVED
from shared.storage import DuplicateKey

from .reports import RESEND_AFTER, apply_case_event, new_report, submitted_event

log = logging.getLogger(__name__)
_RECEIVED: dict = {}


def _received(channel: str):
    """The channel's counter: ``labels()`` takes a lock and builds a key on every call (1 % of the
    accept path); the children are fixed once made, and the channels are a closed list (schemas)."""
    counter = _RECEIVED.get(channel)
    if counter is None:
        counter = _RECEIVED[channel] = REPORTS_RECEIVED.labels(channel)
    return counter


class IntakeService:
    def __init__(self, reports: Aggregates, clock: Clock, loop=None, phone_key=None):
        self.reports = reports
        self.clock = clock
        self.loop = loop  # the resident's loop (loop.py): instant answers, duplicates, ratings
        # phone -> its keyed hash: a report is found by its reporter's phone (我的反映) through an
        # index on this, never by reading phones
        self.phone_key = phone_key

    def submit(self, body: dict, idempotency_key: str | None = None) -> dict:
        """Stores a report; the returned document carries ``possible_duplicates`` found on arrival.

        ``idempotency_key`` (the client's key, scoped by the caller): a POST resent after a lost
        answer returns the report the first one made instead of making a second."""
        if idempotency_key:
            found = self.reports.collection.find({"idempotency_key": idempotency_key}, limit=1)
            if found:
                return found[0]
        report, events = new_report(body, self.clock.now())
        report["idempotency_key"] = idempotency_key
        mobile = phones.mobile(body.get("reporter_phone"))
        report["phone_key"] = self.phone_key(mobile) if self.phone_key and mobile else None
        if self.loop is not None:
            events, _ = self.loop.on_arrival(report, events, body)
        try:
            stored = self.reports.add(report, events)
        except DuplicateKey:
            found = self.reports.collection.find({"idempotency_key": idempotency_key}, limit=1) if idempotency_key else []
            if not found:
                raise
            return found[0]  # a concurrent resend of the same POST won the race
        _received(report["channel"]).inc()
        log.info("report accepted", extra={"correlation_id": report["_id"], "township": report["township"]})
        return stored

    def find(self, ref: str) -> dict | None:
        report = self.reports.get(ref)
        if report is None and len(ref) <= 12:
            found = self.reports.collection.find({"tracking_no": ref.upper()}, limit=1)
            report = found[0] if found else None
        return report

    def by_phone(self, township: str, phone_key: str, limit: int = 100) -> list[dict]:
        """我的反映: a township's reports made from one phone (by its keyed hash), newest first."""
        return self.reports.collection.find({"township": township, "phone_key": phone_key},
                                            sort=[("submitted_at", -1)], limit=limit)

    # -- queries for Open311 (indexed fields only: township, tracking_no, submitted_at, category, status) --
    def in_township(self, township: str, tracking_no: str) -> dict | None:
        found = self.reports.collection.find({"township": township, "tracking_no": tracking_no.upper()}, limit=1)
        return found[0] if found else None

    def by_tracking_numbers(self, township: str, tracking_nos: list[str], limit: int = 1000) -> list[dict]:
        wanted = sorted({t.upper() for t in tracking_nos})
        return self.reports.collection.find({"township": township, "tracking_no": {"$in": wanted}},
                                            sort=[("submitted_at", -1)], limit=limit)

    def search(self, township: str, *, since: str, until: str, categories: list[str] | None = None,
               statuses: tuple[str, ...] | None = None, limit: int = 1000) -> list[dict]:
        """A township's reports submitted in [since, until] (stored ISO text), newest first."""
        where: dict = {"township": township, "submitted_at": {"$gte": since, "$lte": until}}
        if categories:
            where["category"] = {"$in": list(categories)}
        if statuses:
            where["status"] = {"$in": list(statuses)}
        return self.reports.collection.find(where, sort=[("submitted_at", -1)], limit=limit)

    def updated_since(self, township: str, since: str, limit: int = 5000) -> list[dict]:
        """A township's reports changed at or after ``since`` (stored ISO text): every report with a step
        in a window starting then (the Open311 updates feed, open311_updates.py)."""
        return self.reports.collection.find({"township": township, "updated_at": {"$gte": since}},
                                            sort=[("updated_at", 1)], limit=limit)

    # -- events -------------------------------------------------------------------------------
    def on_case_event(self, event: dict) -> None:
        """Folds a case event into its report's view — and into every report that follows the case."""
        if event["type"] == "case.merged" and self.loop is not None:
            self.loop.on_merged(event)
            return
        report_id = event["payload"]["report_id"]

        def fold(report: dict):
            if self.loop is not None and not self.loop.owns_event(report, event):
                raise Unchanged  # a report that follows another case: its own case was merged away
            apply_case_event(report, event)
            return self.loop.after_fold(report, event) if self.loop is not None else ()

        try:
            stored = self.reports.mutate(report_id, fold, applying=event["id"])
        except NotFound:
            log.warning("case event for a report intake does not have", extra={"correlation_id": report_id})
            return
        for follower in stored.get("followers") or ():
            try:
                self.reports.mutate(follower, fold, applying=event["id"])
            except NotFound:
                continue

    # -- safety net -----------------------------------------------------------------------------
    def resend(self, report: dict) -> None:
        """No case after RESEND_AFTER: publish report.submitted again (same event id)."""
        now = self.clock.now()

        def again(doc: dict):
            if doc.get("case_id") or doc.get("status") == "answered" or doc.get("linked_to"):
                doc["resend_due"] = None
                return ()
            doc["resend_due"] = iso(now + RESEND_AFTER)
            if any(e["type"] == "report.submitted" for e in doc.get("outbox", [])):
                return ()
            log.warning("no case yet for report, sending it again", extra={"correlation_id": doc["_id"]})
            return [submitted_event(doc, now)]

        self.reports.mutate(report["_id"], again)
