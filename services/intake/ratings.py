"""Ratings: one per resolution of the case, by the resident who reported it or follows it (or
recorded from a follow-up call); asking for one when a case is resolved; the rating page's form."""
from __future__ import annotations

from datetime import datetime, timedelta

from shared.clock import iso, parse_iso
from shared.events import make_event
from shared.domain.phones import mask_text

from shared.domain.ids import case_id_for

from .loop_errors import NOT_FOUND, Conflict, NotVisible
from .residents import Caller

RATINGS = {"满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "unsatisfied",
           "satisfied": "satisfied", "basically_satisfied": "basically_satisfied", "unsatisfied": "unsatisfied"}
RATING_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}


def current_rating(report: dict) -> dict | None:
    """The rating of the report's current resolution, if given."""
    res = report.get("resolution")
    if not res:
        return None
    return next((r for r in report.get("ratings", [])
                 if r.get("resolved_at") == res["at"] and r.get("resolution") == res["no"]), None)


def can_rate(report: dict) -> bool:
    return report.get("status") == "resolved" and bool(report.get("resolution")) and current_rating(report) is None


def resolved_by(res: dict | None) -> dict | None:
    if not res:
        return None
    return {k: res.get(k) for k in ("level", "unit_id", "unit_name", "lead_id", "lead_name")}

class Ratings:
    """Part of ResidentLoop (services/intake/loop.py), which holds the stores, settings and clock."""

    def _ask_to_rate(self, report: dict, now: datetime, caused_by: str | None = None) -> list[dict]:
        settings = self.settings.get(report["township"])
        res = report["resolution"]
        report["rating_due"] = iso(max(now, parse_iso(res["at"])) + timedelta(days=settings["followup_after_days"]))
        linked = report.get("linked_to") or {}
        return [make_event("report.rating_requested", report["township"], {
            "report_id": report["_id"], "tracking_no": report["tracking_no"], "case_id": report.get("case_id"),
            "category": report["category"], "summary": mask_text(report.get("description") or "")[:60],
            "resolution": res["no"], "rate_url": self.rate_url(report, settings),
            "canonical_tracking_no": linked.get("tracking_no"), "linked": bool(linked)},
            at=now, correlation_id=report["_id"],
            caused_by=f"{caused_by or 'rating'}:{report['_id']}:{res['at']}", key="rating_requested")]

    @staticmethod
    def rate_url(report: dict, settings: dict) -> str | None:
        base = settings.get("rating_link_base")
        return f"{base}/r/{report['tracking_no']}" if base else None

    def rate(self, ref: str, caller: Caller, phone_last4: str | None, rating: str, comment: str | None) -> dict:
        report = self.resident_report(ref, caller, phone_last4)
        return self._record_rating(report["_id"], RATINGS[rating], comment, source="resident", resolved_at=None)

    def _record_rating(self, report_id: str, rating: str, comment: str | None, *, source: str,
                       resolved_at: str | None, actor: str | None = None) -> dict:
        now = self.clock.now()

        def change(doc: dict):
            res = doc.get("resolution")
            if doc.get("status") != "resolved" or not res:
                raise Conflict("诉求尚未办结，暂不能评价")
            if resolved_at and res["at"] != resolved_at:
                raise Conflict("诉求已重新办理，本次回访对应的办结已不是最新一次")
            if current_rating(doc) is not None:
                raise Conflict("本次办结已评价，每次办结只能评价一次")
            label = RATING_LABELS[rating]
            entry = {"resolution": res["no"], "resolved_at": res["at"], "rating": rating, "label": label,
                     "comment": comment, "source": source, "at": iso(now), "by": actor}
            doc.setdefault("ratings", []).append(entry)
            doc["rating_due"] = None
            doc["updated_at"] = iso(now)
            text = f"您的评价：{label}" if source == "resident" else f"回访记录您的评价：{label}"
            doc["timeline"].append({"at": iso(now), "type": "rated", "text": text + (f"（{comment}）" if comment else "")})
            return [make_event("report.rated", doc["township"], {
                "case_id": doc.get("case_id") or case_id_for(doc["_id"]), "report_id": doc["_id"],
                "tracking_no": doc["tracking_no"], "category": doc["category"], "rating": rating,
                "rating_label": label, "satisfied": rating != "unsatisfied", "comment": comment,
                "resolution": res["no"], "resolved_at": res["at"], "resolved_by": resolved_by(res),
                "source": source, "linked": bool(doc.get("linked_to")), "rated_at": iso(now)},
                at=now, correlation_id=doc["_id"])]

        return self.reports.mutate(report_id, change)

    def rate_by_page(self, tracking_no: str, phone_last4: str, rating: str, comment: str | None) -> dict:
        """The rating link's form (/r/<查询码>): the tracking number and last four digits are the proof."""
        report = self.find(tracking_no) if len(tracking_no) <= 12 else None
        if report is None:
            raise NotVisible(NOT_FOUND)
        page = Caller("app", principal=_Anyone(report["township"]))
        return self.rate(report["_id"], page, phone_last4, rating, comment)


class _Anyone:
    """The rating page's stand-in principal: it sees the township of the report it was asked about."""

    def __init__(self, township: str):
        self.township = township
        self.role = "page"
        self.name = "rating-page"

    def sees(self, township: str) -> bool:
        return township == self.township
