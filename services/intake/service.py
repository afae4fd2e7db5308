"""intake's use cases."""
from __future__ import annotations

import logging

from shared.aggregates import Aggregates
from shared.clock import Clock, iso

from .reports import RESEND_AFTER, apply_case_event, new_report, submitted_event

log = logging.getLogger(__name__)


class IntakeService:
    def __init__(self, reports: Aggregates, clock: Clock):
        self.reports = reports
        self.clock = clock

    def submit(self, body: dict) -> dict:
        report, events = new_report(body, self.clock.now())
        stored = self.reports.add(report, events)
        log.info("report accepted", extra={"correlation_id": report["_id"], "township": report["township"]})
        return stored

    def find(self, ref: str) -> dict | None:
        report = self.reports.get(ref)
        if report is None and len(ref) <= 12:
            found = self.reports.collection.find({"tracking_no": ref.upper()}, limit=1)
            report = found[0] if found else None
        return report

    # -- events -------------------------------------------------------------------------------
    def on_case_event(self, event: dict) -> None:
        report_id = event["payload"]["report_id"]

        def fold(report: dict):
            apply_case_event(report, event)
            return ()

        self.reports.mutate(report_id, fold, applying=event["id"])

    # -- safety net -----------------------------------------------------------------------------
    def resend(self, report: dict) -> None:
        """No case after RESEND_AFTER: publish report.submitted again (same event id)."""
        now = self.clock.now()

        def again(doc: dict):
            if doc.get("case_id"):
                doc["resend_due"] = None
                return ()
            doc["resend_due"] = iso(now + RESEND_AFTER)
            if any(e["type"] == "report.submitted" for e in doc.get("outbox", [])):
                return ()
            log.warning("no case yet for report, sending it again", extra={"correlation_id": doc["_id"]})
            return [submitted_event(doc, now)]

        self.reports.mutate(report["_id"], again)
