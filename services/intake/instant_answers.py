"""Instant answers: a confident match of the township's knowledge base answers a new report at
once and opens no case; "this didn't answer me" turns it into a general report. A report that is
not answered gets its likely duplicates instead (duplicates.py finds them)."""
from __future__ import annotations

import logging

from shared.clock import iso, parse_iso

from .loop_errors import Conflict
from .reports import RESEND_AFTER, submitted_event

log = logging.getLogger(__name__)

class InstantAnswers:
    """Part of ResidentLoop (services/intake/loop.py), which holds the stores, settings and clock."""

    def on_arrival(self, report: dict, events: list[dict], body: dict) -> tuple[list[dict], list[dict]]:
        """Before a new report is stored: answer it from the knowledge base, or find likely duplicates.
        Returns the events to store with it and the duplicates to show the resident."""
        settings = self.settings.get(report["township"])
        now = parse_iso(report["submitted_at"])
        if settings["instant_answers"] and not body.get("urgent") and body.get("channel") != "lead":
            match, entry = self.kb.match(report["township"], report["description"])
            if match is not None and match.confident and entry is not None:
                report.update(status="answered", tier="instant", resend_due=None, answered_at=iso(now), answer={
                    "entry_code": entry["code"], "question": entry["question"], "answer": entry["answer"],
                    "category": entry.get("category"), "confidence": round(match.confidence, 3),
                    "declined_at": None})
                report["timeline"].append({"at": iso(now), "type": "answered",
                                           "text": f"常见问题即时答复：{entry['question']}"})
                log.info("report answered from the knowledge base (%s)", entry["code"],
                         extra={"correlation_id": report["_id"], "township": report["township"]})
                return [], []
        duplicates = self.finder.on_arrival(report, settings, now)
        report["possible_duplicates"] = duplicates
        return events, duplicates

    def not_answered(self, ref: str, caller: Caller, phone_last4: str | None, note: str | None) -> dict:
        report = self.resident_report(ref, caller, phone_last4)
        now = self.clock.now()

        def change(doc: dict):
            if doc["status"] != "answered":
                raise Conflict("该诉求不是常见问题即时答复，或已转人工办理")
            doc.update(status="submitted", tier="general", resend_due=iso(now + RESEND_AFTER), updated_at=iso(now))
            doc["answer"]["declined_at"] = iso(now)
            doc["answer"]["declined_note"] = note
            doc["timeline"].append({"at": iso(now), "type": "not_answered",
                                    "text": "您表示答复没有解决问题，已转人工办理" + (f"：{note}" if note else "")})
            return [submitted_event(doc, now)]

        return self.reports.mutate(report["_id"], change)
