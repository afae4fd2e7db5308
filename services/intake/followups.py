"""Follow-up calls (回访): a resolution left unrated past its due time becomes a call owed by the
township's staff, completed with an outcome; a satisfied or unsatisfied outcome is recorded as the
resident's rating."""
from __future__ import annotations

from shared.aggregates import Unchanged
from shared.clock import iso
from shared.events import make_event
from shared.domain.ids import derived_id
from shared.domain.phones import mask_text
from shared.storage import DuplicateKey

from .loop_errors import Conflict, NotVisible
from .ratings import can_rate, resolved_by

OUTCOMES = {"reached": "已联系上", "satisfied": "回访满意", "unsatisfied": "回访不满意", "unreachable": "联系不上"}


def followup_id(report_id: str, res: dict) -> str:
    return derived_id("followup", report_id, str(res["no"]), res["at"])

class Followups:
    """Part of ResidentLoop (services/intake/loop.py), which holds the stores, settings and clock."""

    def create_followup(self, claimed: dict) -> None:
        """DueSweeper work on ``rating_due``: the resident did not rate in time."""
        now = self.clock.now()
        report = self.reports.get(claimed["_id"])
        if report is None:
            return
        res = report.get("resolution")
        # A reporter who left no phone (an Open311 client's user) cannot be called back: no task.
        if can_rate(report) and report.get("reporter_phone"):
            fid = followup_id(report["_id"], res)
            doc = {"_id": fid, "township": report["township"], "report_id": report["_id"],
                   "tracking_no": report["tracking_no"], "case_id": report.get("case_id"),
                   "category": report["category"], "summary": mask_text(report.get("description") or "")[:60],
                   "resolution": res["no"], "resolved_at": res["at"], "resolved_by": resolved_by(res),
                   "status": "open", "created_at": iso(now), "due_at": report.get("rating_due") or iso(now),
                   "outcome": None, "note": None, "completed_at": None, "completed_by": None}
            event = make_event("followup.created", report["township"], _followup_payload(doc),
                               at=now, correlation_id=report["_id"], caused_by=fid, key="created")
            try:
                self.followups.add(doc, [event])
            except DuplicateKey:
                pass  # created by an earlier claim that died before clearing the due time

        def clear(d: dict):
            if d.get("rating_due") is None and d.get("followup_id"):
                raise Unchanged
            d["rating_due"] = None
            if can_rate(d):
                d["followup_id"] = followup_id(d["_id"], d["resolution"])
            return ()

        self.reports.mutate(report["_id"], clear)

    def list_followups(self, township: str, status: str, limit: int, skip: int) -> list[dict]:
        where = {"township": township}
        if status != "all":
            where["status"] = status
        docs = self.followups.collection.find(where, sort=[("created_at", -1)], limit=limit, skip=skip)
        return [self.followup_view(d) for d in docs]

    def followup_view(self, doc: dict) -> dict:
        report = self.reports.get(doc["report_id"]) or {}
        rated = next((r for r in report.get("ratings", []) if r.get("resolved_at") == doc["resolved_at"]
                      and r.get("resolution") == doc["resolution"]), None)
        # Staff call the resident back: the only view that shows the whole number.
        return {**doc, "reporter_phone": report.get("reporter_phone"), "reporter_name": report.get("reporter_name"),
                "rated": rated["label"] if rated else None}

    def complete_followup(self, principal, followup_id: str, outcome: str, note: str | None) -> dict:
        doc = self.followups.get(followup_id)
        if doc is None or not principal.sees(doc["township"]):
            raise NotVisible("未找到该回访任务")
        if doc["status"] != "open":
            raise Conflict("该回访已完成")
        actor = principal.name or principal.role
        if outcome in ("satisfied", "unsatisfied"):
            try:
                self._record_rating(doc["report_id"], outcome, note, source="followup",
                                    resolved_at=doc["resolved_at"], actor=actor)
            except Conflict:
                pass  # the resident rated meanwhile, or the case was reopened: the outcome is still recorded
        now = self.clock.now()

        def complete(d: dict):
            if d["status"] != "open":
                raise Conflict("该回访已完成")
            d.update(status="done", outcome=outcome, note=note, completed_at=iso(now), completed_by=actor)
            return [make_event("followup.completed", d["township"], {**_followup_payload(d), "actor": actor},
                               at=now, correlation_id=d["report_id"])]

        return self.followup_view(self.followups.mutate(followup_id, complete))


def _followup_payload(doc: dict) -> dict:
    return {k: doc.get(k) for k in ("report_id", "tracking_no", "case_id", "category", "summary", "resolution",
                                    "resolved_by", "outcome", "note", "due_at", "completed_at")} | \
        {"followup_id": doc["_id"]}
