"""The resident's loop on intake's side: instant answers, "didn't answer me", likely duplicates and
following, ratings and follow-up calls, photos.

Choices (see also services/dispatch/resident_loop.py for dispatch's half):

- **Instant answers open no case.** A confident match of the township's knowledge base stores the
  report as ``answered`` (tier ``instant``) with the answer and emits nothing: no report.submitted,
  so dispatch never sees it and no lead is disturbed. "This didn't answer me"
  (POST /reports/<id>/not-answered, by the resident) turns it into a ``general`` report and emits
  report.submitted then, with tier "general".
- **Duplicates are suggested, never merged by themselves.** The 201 response lists likely
  duplicates; the resident may follow one (POST /reports/<id>/follow): intake links the report at
  once (its view shows the followed report's progress) and emits report.followed; dispatch closes
  the case it had opened for the report as ``merged`` and emits case.merged naming every report
  that now follows the canonical case (``linked_report_ids``). Staff merge cases on dispatch
  (POST /cases/<id>/merge); the same case.merged reaches intake. From then on intake folds each
  event of the canonical case into every linked report's view too.
- **Ratings**: one per resolution of the case (a case reopened and resolved again is rated again),
  by the resident who reported it (or who follows it). report.rated carries the resolution number
  and who resolved it; dispatch reopens on 不满意 (once at the level that resolved it, then the
  township rules). Each resolution asks for a rating (report.rating_requested, with the township's
  rating link) and sets ``rating_due``; a DueSweeper turns an unanswered one into a follow-up call
  (回访) for the township's staff, completed with an outcome (followup.completed). A satisfied or
  unsatisfied outcome is recorded as the resident's rating (source "followup").
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from shared.aggregates import Aggregates, NotFound, Unchanged
from shared.clock import Clock, iso, parse_iso
from shared.domain.ids import case_id_for, derived_id
from shared.domain.phones import mask_text
from shared.events import make_event
from shared.storage import DuplicateKey

from . import photos as photo_rules
from .duplicates import OPEN as OPEN_FOR_DUPLICATES, DuplicateFinder
from .knowledge import KnowledgeBase
from .reports import RESEND_AFTER, submitted_event, summary_text
from .residents import Caller, ResidentTokens, TownshipSettings, note_failure, proof_ok

log = logging.getLogger(__name__)

RATINGS = {"满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "unsatisfied",
           "satisfied": "satisfied", "basically_satisfied": "basically_satisfied", "unsatisfied": "unsatisfied"}
RATING_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
OUTCOMES = {"reached": "已联系上", "satisfied": "回访满意", "unsatisfied": "回访不满意", "unreachable": "联系不上"}
FOLLOWABLE = ("submitted", "assigned", "accepted")     # a report that may still become a follower
NOT_FOUND = "未找到该诉求，或查询码与手机号后四位不符"   # one answer for "no such report" and "not yours"


class LoopError(Exception):
    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotVisible(LoopError):
    status = 404


class Forbidden(LoopError):
    status = 403


class Conflict(LoopError):
    status = 409


class BadInput(LoopError):
    status = 422


class TooLarge(LoopError):
    status = 413


class Unsupported(LoopError):
    status = 415


def current_rating(report: dict) -> dict | None:
    """The rating of the report's current resolution, if given."""
    res = report.get("resolution")
    if not res:
        return None
    return next((r for r in report.get("ratings", [])
                 if r.get("resolved_at") == res["at"] and r.get("resolution") == res["no"]), None)


def can_rate(report: dict) -> bool:
    return report.get("status") == "resolved" and bool(report.get("resolution")) and current_rating(report) is None


def followup_id(report_id: str, res: dict) -> str:
    return derived_id("followup", report_id, str(res["no"]), res["at"])


def resolved_by(res: dict | None) -> dict | None:
    if not res:
        return None
    return {k: res.get(k) for k in ("level", "unit_id", "unit_name", "lead_id", "lead_name")}


class ResidentLoop:
    def __init__(self, reports: Aggregates, followups: Aggregates, kb: KnowledgeBase, settings: TownshipSettings,
                 tokens: ResidentTokens, blobs, clock: Clock):
        self.reports = reports
        self.followups = followups
        self.kb = kb
        self.settings = settings
        self.tokens = tokens
        self.blobs = blobs
        self.clock = clock
        self.finder = DuplicateFinder(reports.collection)

    # == arrival ==================================================================================
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

    # == the resident and their report ===============================================================
    def find(self, ref: str) -> dict | None:
        report = self.reports.get(ref)
        if report is None and len(ref) <= 12:
            found = self.reports.collection.find({"tracking_no": ref.upper()}, limit=1)
            report = found[0] if found else None
        return report

    def resident_report(self, ref: str, caller: Caller, phone_last4: str | None) -> dict:
        """The report, if the caller proves to be the resident who made it; 404 otherwise."""
        if caller.kind not in ("resident", "app"):
            raise Forbidden("此操作须由报事群众本人（查询码+手机号后四位，或群众凭证）进行")
        report = self.find(ref)
        if report is None or not caller.sees(report["township"]):
            raise NotVisible(NOT_FOUND)
        now = self.clock.now()
        if not proof_ok(report, caller, phone_last4, now):
            if caller.kind == "app":
                try:
                    self.reports.mutate(report["_id"], lambda d: _fail(d, now))
                except NotFound:
                    pass
            raise NotVisible(NOT_FOUND)
        return report

    # == "this didn't answer me" =====================================================================
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

    # == following an existing report ================================================================
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

    # == folding the canonical case into linked reports (called from IntakeService) ===================
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

    # == ratings =======================================================================================
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

    # == follow-up calls (回访) =======================================================================
    def create_followup(self, claimed: dict) -> None:
        """DueSweeper work on ``rating_due``: the resident did not rate in time."""
        now = self.clock.now()
        report = self.reports.get(claimed["_id"])
        if report is None:
            return
        res = report.get("resolution")
        if can_rate(report):
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

    # == photos ===========================================================================================
    def add_photo(self, ref: str, caller: Caller, phone_last4: str | None, data: bytes) -> tuple[dict, dict]:
        if caller.kind in ("resident", "app"):
            report = self.resident_report(ref, caller, phone_last4)
            by = "resident"
        elif caller.kind in ("staff", "lead"):
            report = self.find(ref)
            if report is None or not caller.sees(report["township"]):
                raise NotVisible("未找到该诉求")
            if caller.kind == "lead" and (report.get("handler") or {}).get("unit_id") != caller.principal.unit_id:
                raise Forbidden("只有经办该诉求的三长可以上传照片")
            by = caller.name
        else:
            raise Forbidden("无权上传照片")
        if len(data) > photo_rules.MAX_BYTES:
            raise TooLarge(f"照片不能超过{photo_rules.MAX_BYTES // (1024 * 1024)}MB", field="file")
        if not data:
            raise BadInput("缺少照片文件", field="file")
        content_type = photo_rules.sniff(data)
        if content_type is None:
            raise Unsupported("只接受JPEG、PNG或WebP格式的照片", field="file")
        pid = photo_rules.photo_id(report["_id"], data)
        if any(u["id"] == pid for u in report.get("uploads", [])):
            return report, next(u for u in report["uploads"] if u["id"] == pid)
        if len(report.get("uploads", [])) >= photo_rules.MAX_PHOTOS:
            raise Conflict(f"每条诉求最多{photo_rules.MAX_PHOTOS}张照片")
        now = self.clock.now()
        upload = {"id": pid, "content_type": content_type, "size": len(data), "by": by, "at": iso(now),
                  "url": photo_rules.photo_path(pid)}
        try:
            self.blobs.put(pid, data, {"township": report["township"], "report_id": report["_id"],
                                       "content_type": content_type, "size": len(data), "by": by, "at": iso(now)})
        except DuplicateKey:
            pass  # stored by an upload whose response was lost

        def attach(doc: dict):
            if any(u["id"] == pid for u in doc.get("uploads", [])):
                raise Unchanged
            if len(doc.get("uploads", [])) >= photo_rules.MAX_PHOTOS:
                raise Conflict(f"每条诉求最多{photo_rules.MAX_PHOTOS}张照片")
            doc.setdefault("uploads", []).append(upload)
            doc["updated_at"] = iso(now)
            return ()

        return self.reports.mutate(report["_id"], attach), upload

    def photo(self, pid: str, caller: Caller | None):
        blob = self.blobs.get(pid)
        if blob is None or caller is None:
            raise NotVisible("未找到该照片")
        township = blob.meta.get("township")
        if caller.kind == "resident":
            if caller.report_id != blob.meta.get("report_id"):
                raise NotVisible("未找到该照片")
        elif caller.kind not in ("app", "staff", "lead") or not caller.sees(township):
            raise NotVisible("未找到该照片")
        return blob


class _Anyone:
    """The rating page's stand-in principal: it sees the township of the report it was asked about."""

    def __init__(self, township: str):
        self.township = township
        self.role = "page"
        self.name = "rating-page"

    def sees(self, township: str) -> bool:
        return township == self.township


def _fail(doc: dict, now: datetime):
    note_failure(doc, now)
    return ()


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


def _followup_payload(doc: dict) -> dict:
    return {k: doc.get(k) for k in ("report_id", "tracking_no", "case_id", "category", "summary", "resolution",
                                    "resolved_by", "outcome", "note", "due_at", "completed_at")} | \
        {"followup_id": doc["_id"]}
