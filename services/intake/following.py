"""Following an existing report, and folding the canonical case into the reports that follow it:
the resident's follow, dispatch's case.merged, which events a linked report takes, and what a fold
changes on the report (the rating request, duplicates near its post)."""
from __future__ import annotations

import logging
from datetime import datetime

from shared.aggregates import NotFound, Unchanged
from shared.clock import iso, parse_iso
from shared.events import make_event

from shared.domain.ids import case_id_for

from .duplicates import OPEN as OPEN_FOR_DUPLICATES
from .loop_errors import BadInput, Conflict
from .ratings import can_rate
from .reports import summary_text
from .residents import Caller

log = logging.getLogger(__name__)

FOLLOWABLE = ("submitted", "assigned", "accepted")     # a report that may still become a follower

class Following:
    """Part of ResidentLoop (services/intake/loop.py), which holds the stores, settings and clock."""

    def follow(self, ref: str, caller: Caller, phone_last4: str | None, target_ref: str) -> dict:
        report = self.resident_report(ref, caller, phone_last4)
        target = self.find(target_ref)
        if target is None or target["township"] != report["township"]:
            raise BadInput("未找到要关注的诉求（请填写本镇的查询码）", field="target")
        if target.get("linked_to"):  # follow the report it follows
            target = self.reports.get(target["linked_to"]["report_id"]) or target
        if target["_id"] == report["_id"]:
            raise BadInput("不能关注自己的诉求", field="target")
        if (report.get("linked_to") or {}).get("report_id") == target["_id"]:
            return report  # already following it: the same answer again
        if report.get("linked_to"):
            raise Conflict(f"该诉求已关注诉求{report['linked_to']['tracking_no']}")
        if report["status"] not in FOLLOWABLE:
            raise Conflict("该诉求已在办结或上报市直部门，不能改为关注其他诉求")
        if target["status"] not in OPEN_FOR_DUPLICATES:
            raise Conflict("要关注的诉求已办结或已答复，请直接提交您的诉求")
        now = self.clock.now()

        def link(doc: dict):
            if doc.get("linked_to"):
                raise Unchanged
            _link(doc, target, now, "您已选择关注诉求" + target["tracking_no"] + "，办理进展将同步告知您")
            return [make_event("report.followed", doc["township"], {
                "report_id": doc["_id"], "tracking_no": doc["tracking_no"], "target_report_id": target["_id"],
                "target_tracking_no": target["tracking_no"], "actor": "resident"},
                at=now, correlation_id=doc["_id"])]

        stored = self.reports.mutate(report["_id"], link)
        self._add_followers(target["_id"], [report["_id"], *report.get("followers", [])], applying=None)
        return stored

    def _add_followers(self, canonical_id: str, ids: list[str], applying: str | None) -> None:
        def add(doc: dict):
            current = doc.setdefault("followers", [])
            new = [i for i in ids if i not in current and i != doc["_id"]]
            if not new:
                raise Unchanged
            current.extend(new)
            return ()
        try:
            self.reports.mutate(canonical_id, add, applying=applying)
        except NotFound:
            log.warning("followed report is gone", extra={"correlation_id": canonical_id})

    def on_merged(self, event: dict) -> None:
        """case.merged: every report of the merged case now follows the canonical report."""
        p = event["payload"]
        canonical_id = p.get("merged_into_report_id")
        canonical = self.reports.get(canonical_id) if canonical_id else None
        if canonical is None:
            return
        moved = [r for r in (p.get("linked_report_ids") or [p["report_id"]]) if r != canonical_id]
        now = self.clock.now()
        text = summary_text("case.merged", p)
        for rid in moved:
            def link(doc: dict):
                already = (doc.get("linked_to") or {}).get("report_id") == canonical_id
                if not already:
                    _link(doc, canonical, parse_iso(event["occurred_at"]), text)
                return self._ask_to_rate(doc, now) if can_rate(doc) and not doc.get("rating_due") else ()
            try:
                self.reports.mutate(rid, link, applying=event["id"])
            except NotFound:
                continue
        self._add_followers(canonical_id, moved, applying=event["id"])

    def owns_event(self, report: dict, event: dict) -> bool:
        """A linked report takes the canonical case's events, and no longer its own case's."""
        linked = report.get("linked_to")
        if not linked:
            return True
        return event["payload"]["case_id"] == case_id_for(linked["report_id"])

    def after_fold(self, report: dict, event: dict) -> list[dict]:
        """Inside the fold's compare-and-set: the rating request and its due time, or clearing them."""
        kind = event["type"]
        now = self.clock.now()
        if kind == "case.resolved" and report.get("status") == "resolved" and report.get("resolution") \
                and report["resolution"]["at"] == event["occurred_at"]:
            return self._ask_to_rate(report, now, caused_by=event["id"])
        if kind == "case.reopened" or report.get("status") != "resolved":
            report["rating_due"] = None
        if kind == "case.assigned" and not report.get("landing_unit_id") and not report.get("linked_to"):
            unit_id = event["payload"]["assignee"].get("unit_id")
            if unit_id:
                report["landing_unit_id"] = unit_id
                settings = self.settings.get(report["township"])
                near = self.finder.at_post(report, unit_id, settings, parse_iso(report["submitted_at"]))
                known = {d["tracking_no"] for d in report.get("possible_duplicates") or []}
                report["possible_duplicates"] = (report.get("possible_duplicates") or []) + \
                    [d for d in near if d["tracking_no"] not in known]
        return []


def _link(doc: dict, canonical: dict, at: datetime, text: str) -> None:
    """Makes ``doc`` follow ``canonical``: its view takes the canonical report's state from now on."""
    doc["linked_to"] = {"report_id": canonical["_id"], "tracking_no": canonical["tracking_no"], "at": iso(at)}
    for key in ("status", "level", "handler", "expected_at", "case_id", "last_event_at", "resolution"):
        doc[key] = canonical.get(key)
    doc["resolutions"] = canonical.get("resolutions", 0)
    doc["followers"] = []   # whoever followed this report now follows the canonical one (case.merged relinks them)
    doc["resend_due"] = None
    doc["rating_due"] = None
    doc["updated_at"] = iso(at)
    doc["timeline"].append({"at": iso(at), "type": "linked", "text": text})
    doc["timeline"].sort(key=lambda e: e["at"])
