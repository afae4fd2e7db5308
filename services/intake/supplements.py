"""The resident's answer to a case paused for them (待群众补充材料, dispatch's pausing.py).

``case.paused`` with pause_reason ``awaiting_resident`` sets ``awaiting`` on the report (what the holder
asked for, shown in the resident's view); the resident answers with POST /reports/<ref>/supplement
(text, by the resident who reported or follows the case), which stores the answer on the report's
timeline and emits ``report.supplemented``: dispatch resumes the case's clock. ``case.resumed``
clears ``awaiting`` whoever resumed it. An answer when nothing is asked for is a 409.
"""
from __future__ import annotations

from shared.aggregates import Unchanged
from shared.clock import iso
from shared.domain.phones import mask_text
from shared.events import make_event

from .loop_errors import Conflict
from .residents import Caller

MAX_TEXT = 1000


def fold_pause(report: dict, event: dict) -> None:
    """Inside the case event's fold: what the holder asks the resident for, or that it is answered."""
    payload = event["payload"]
    if event["type"] == "case.paused" and payload.get("pause_reason") == "awaiting_resident":
        report["awaiting"] = {"note": payload.get("note"), "since": event["occurred_at"],
                              "resume_at": payload.get("resume_at"), "case_id": payload["case_id"]}
    elif event["type"] in ("case.resumed", "case.resolved", "case.escalated", "case.referred", "case.merged"):
        report["awaiting"] = None


class Supplements:
    """Part of ResidentLoop (services/intake/loop.py), which holds the stores and the clock."""

    def supplement(self, ref: str, caller: Caller, phone_last4: str | None, text: str) -> dict:
        report = self.resident_report(ref, caller, phone_last4)
        if not report.get("awaiting"):
            raise Conflict("当前没有需要您补充的材料")
        now = self.clock.now()

        def answer(doc: dict):
            asked = doc.get("awaiting")
            if not asked:
                raise Unchanged
            doc["awaiting"] = None
            doc["timeline"].append({"at": iso(now), "type": "supplemented", "text": "您已补充材料：" + text})
            doc["updated_at"] = iso(now)
            return [make_event("report.supplemented", doc["township"], {
                "report_id": doc["_id"], "tracking_no": doc["tracking_no"],
                # A number the resident typed stays on the report; the broker carries it masked.
                "case_id": asked.get("case_id") or doc.get("case_id"), "text": mask_text(text),
                "supplemented_at": iso(now)}, at=now, correlation_id=doc["_id"])]

        return self.reports.mutate(report["_id"], answer)
