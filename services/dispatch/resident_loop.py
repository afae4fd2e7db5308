"""dispatch's half of the resident's loop: reopening on 不满意, following and merging duplicates.

- ``report.rated`` (from intake): every rating goes on the case's timeline with the resident's
  comment. A **不满意** on the case's current resolution reopens it:
  the first time **at the level that resolved it** — the same post (or, if that post is now vacant,
  the first staffed post above it), status ``assigned`` with fresh clocks and a fresh promise; a
  case a city department signed off goes back to the **township** instead (the escalation service
  keeps the first referral of a case, so it cannot be referred twice; the township decides whether
  to take it up with the department again). The second time the case goes to the **township for
  a ruling** (``ruling`` on the case, the reason in the event). After the township's ruling is
  resolved, a further 不满意 is recorded but reopens nothing: the ruling stands.
  A rating of an older resolution (the case was reopened meanwhile) is recorded only.
  Emits ``case.reopened`` (a CaseEvent with ``rating``, ``comment``, ``reopens``).
- ``report.followed`` (from intake): the resident chose to follow an existing report; the case
  dispatch opened for their report is **merged** into the canonical case.
- ``POST /api/v1/cases/<id>/merge {"into": case_id}`` (township staff, ``merge_api``): the same merge by hand.
- A merge closes the merged case (status ``merged``, no holder, no timers, ``merged_into``) and
  emits ``case.merged`` naming the canonical case and every report that now follows it
  (``linked_report_ids``: the merged case's own report and those that followed it). dispatch then
  consumes its own ``case.merged`` to add those reports to the canonical case's
  ``linked_report_ids`` — two documents, each changed atomically, joined by the event (the outbox),
  so a crash between the two steps loses nothing. Nothing is merged without a resident's or
  staff's say.

This module's handlers are idempotent with their own key (``derived_id("resident-loop", event id)``
in the case's ``seen``), so they do not collide with the supervision projector, which handles the
same events on the same documents.
"""
from __future__ import annotations

import logging


from shared.aggregates import Aggregates, NotFound, Unchanged
from shared.clock import Clock, iso
from shared.domain.ids import case_id_for, derived_id
from shared.domain.statuses import OPEN_STATUSES

from . import sla, views
from .cases import apply_assignment, case_event, timeline_entry
from .chain import Escalator
from .desk import actor_of, can_see
from .org import OrgRepository, has_lead
from .policies import Policies
from .timers import schedule
from .transitions import Actor, WrongState

log = logging.getLogger(__name__)

RESIDENT = Actor("resident", "resident")
REOPEN_REASON = "群众不满意，退回原办理层级重新办理"
DEPARTMENT_REOPEN_REASON = "群众对市直部门的办理结果不满意，退回镇(街道)复核"
RULING_REASON = "群众再次不满意，请镇(街道)裁定"
MAX_HOPS = 5


class RetryLater(Exception):
    """The event arrived before what it refers to (a case not opened yet): the broker redelivers it."""


def resolution_count(case: dict) -> int:
    return sum(1 for e in case.get("timeline", []) if e.get("type") in ("resolved", "signed_off"))


class ResidentLoop:
    def __init__(self, org: OrgRepository, cases: Aggregates, policies: Policies, escalator: Escalator, clock: Clock):
        self.org = org
        self.cases = cases
        self.policies = policies
        self.escalator = escalator
        self.clock = clock

    def handlers(self) -> dict:
        return {"report.rated": self.on_report_rated, "report.followed": self.on_report_followed,
                "case.merged": self.on_case_merged}

    # == ratings ======================================================================================
    def on_report_rated(self, event: dict) -> None:
        p = event["payload"]
        now = self.clock.now()
        actor = "resident" if p.get("source") != "followup" else "followup"

        def change(case: dict):
            label = p.get("rating_label") or p["rating"]
            case.setdefault("ratings", []).append({
                "report_id": p["report_id"], "rating": p["rating"], "label": label, "comment": p.get("comment"),
                "resolution": p.get("resolution"), "resolved_at": p.get("resolved_at"), "source": p.get("source"),
                "at": event["occurred_at"]})
            current = case.get("status") == "resolved" and case.get("resolved_at") == p.get("resolved_at")
            reopens = case.get("reopens", 0)
            note = None
            if p["rating"] == "unsatisfied" and not current:
                note = "该次办结之后工单已重新办理，此评价仅作记录"
            elif p["rating"] == "unsatisfied" and reopens >= 2:
                note = "镇(街道)已裁定，不再重新办理"
            case["timeline"].append(timeline_entry(
                now, "rated", actor=actor, actor_role="resident", note=p.get("comment"), rating=label,
                resolution=p.get("resolution"), report_id=p["report_id"], tracking_no=p.get("tracking_no"),
                remark=note))
            case["updated_at"] = iso(now)
            if p["rating"] != "unsatisfied" or not current or reopens >= 2:
                return ()
            return self._reopen(case, p, now, event["id"])

        try:
            self.cases.mutate(p["case_id"], change, applying=derived_id("resident-loop", event["id"]))
        except NotFound:
            log.warning("report.rated for a case dispatch does not have", extra={"case_id": p["case_id"]})

    def _reopen(self, case: dict, p: dict, now, cause: str) -> list[dict]:
        reopens = case.get("reopens", 0)
        previous = dict(case["assignee"])
        if reopens == 0 and case.get("level") != "department" and case.get("unit_id"):
            unit, reason = self._resolver(case), REOPEN_REASON
        elif reopens == 0:
            unit, reason = self.escalator.township_unit(case["township"]), DEPARTMENT_REOPEN_REASON
        else:
            unit, reason = self.escalator.township_unit(case["township"]), RULING_REASON
            case["ruling"] = {"requested_at": iso(now), "reason": reason, "report_id": p["report_id"],
                              "comment": p.get("comment")}
        policy = self.policies.get(case["township"])
        case.setdefault("past_resolutions", []).append({
            "no": resolution_count(case), "resolved_at": case.get("resolved_at"), "resolution": case.get("resolution"),
            "level": previous.get("level"), "unit_id": previous.get("unit_id"), "unit_name": previous.get("unit_name"),
            "lead_name": previous.get("lead_name")})
        case["resolved_at"] = None
        case["resolution"] = None
        case["reopens"] = reopens + 1
        case["status"] = "assigned"  # apply_assignment sets it too; the referral's leftovers are cleared
        case.pop("referred_at", None)
        apply_assignment(case, unit, policy, now)  # fresh clocks at that level, timer rescheduled
        case["promise_due"] = iso(sla.promise_due(policy, case["tier"], now))
        case["timeline"].append(timeline_entry(now, "reopened", actor=RESIDENT.name, actor_role=RESIDENT.role,
                                               assignee=case["assignee"], reason=reason, note=p.get("comment"),
                                               from_level=previous.get("level"), from_unit=previous.get("unit_name"),
                                               reopens=case["reopens"]))
        return [case_event("case.reopened", case, now, caused_by=cause, key="reopened", previous=previous,
                           reason=reason, note=p.get("comment"), comment=p.get("comment"), rating=p["rating"],
                           resolution=p.get("resolution"), reopens=case["reopens"], actor=RESIDENT.name)]

    def _resolver(self, case: dict) -> dict:
        """The post that resolved the case, or the first staffed one above it if it is vacant now."""
        for unit in self.org.climb(case["unit_id"]):
            if has_lead(unit):
                return unit
        return self.escalator.township_unit(case["township"])

    # == following and merging ===========================================================================
    def on_report_followed(self, event: dict) -> None:

        p = event["payload"]
        source_id, target_id = case_id_for(p["report_id"]), case_id_for(p["target_report_id"])
        if self.cases.get(source_id) is None or self.cases.get(target_id) is None:
            raise RetryLater(f"case for {p['report_id']} or {p['target_report_id']} not opened yet")
        reason = f"群众选择关注已有诉求{p['target_tracking_no']}，并入一并办理"
        try:
            self.merge_cases(source_id, target_id, reason=reason, note=None, actor=RESIDENT,
                             applying=derived_id("resident-loop", event["id"]), caused_by=event["id"])
        except (WrongState, LookupError) as exc:
            # e.g. the case was resolved in the meantime: it stays as it is, the link is only intake's
            log.info("follow not merged: %s", exc, extra={"case_id": source_id})

    def canonical(self, case_id: str) -> dict | None:
        """The case itself, or the case it was merged into (followed a few hops at most)."""
        case = self.cases.get(case_id)
        for _ in range(MAX_HOPS):
            if case is None or case.get("status") != "merged":
                return case
            case = self.cases.get(case["merged_into"]["case_id"])
        return None

    def merge_cases(self, source_id: str, target_id: str, *, reason: str, note: str | None, actor: Actor,
                    applying: str | None = None, caused_by: str | None = None) -> dict:
        target = self.canonical(target_id)
        if target is None:
            raise LookupError(target_id)
        if target["_id"] == source_id:
            raise WrongState("不能并入自身")
        now = self.clock.now()

        def change(case: dict):
            if case["township"] != target["township"]:
                raise LookupError(target_id)
            if case["status"] not in OPEN_STATUSES:
                raise WrongState(f"工单当前状态为{case['status']}，只有待接单或办理中的工单可以合并")
            previous = dict(case["assignee"])
            moved = [case["report_id"], *[r for r in case.get("linked_report_ids", []) if r != case["report_id"]]]
            case.update(status="merged", unit_id=None, linked_report_ids=[], updated_at=iso(now),
                        merged_into={"case_id": target["_id"], "report_id": target["report_id"],
                                     "tracking_no": target["tracking_no"], "at": iso(now), "by": actor.name,
                                     "reason": reason})
            schedule(case)  # a merged case has no clock
            case["timeline"].append(timeline_entry(now, "merged", actor=actor.name, actor_role=actor.role,
                                                   reason=reason, note=note, into_case_id=target["_id"],
                                                   into_tracking_no=target["tracking_no"]))
            return [case_event("case.merged", case, now, caused_by=caused_by, key="merged", reason=reason, note=note,
                               actor=actor.name, previous=previous, merged_into_case_id=target["_id"],
                               merged_into_report_id=target["report_id"],
                               merged_into_tracking_no=target["tracking_no"], linked_report_ids=moved)]

        return self.cases.mutate(source_id, change, applying=applying)

    def on_case_merged(self, event: dict) -> None:
        """dispatch's own case.merged: the canonical case learns the reports that now follow it."""
        p = event["payload"]
        ids = [r for r in (p.get("linked_report_ids") or [p["report_id"]])]
        now = self.clock.now()
        target_id = p.get("merged_into_case_id")
        for _ in range(MAX_HOPS):
            target = self.cases.get(target_id) if target_id else None
            if target is None:
                return
            if target.get("status") != "merged":
                break
            target_id = target["merged_into"]["case_id"]  # merged onwards meanwhile: follow it

        def link(case: dict):
            current = case.setdefault("linked_report_ids", [])
            new = [r for r in ids if r not in current and r != case["report_id"]]
            if not new:
                raise Unchanged
            current.extend(new)
            case["timeline"].append(timeline_entry(now, "linked", actor=p.get("actor") or "system",
                                                   reason=p.get("reason"), from_case_id=p["case_id"],
                                                   tracking_no=p.get("tracking_no"), report_ids=new))
            case["updated_at"] = iso(now)
            return ()

        self.cases.mutate(target_id, link, applying=derived_id("resident-loop", event["id"]))

    # == staff: merge by hand ============================================================================
    def merge_by_staff(self, principal, case_id: str, into: str, note: str | None) -> dict:
        source = self.cases.get(case_id)
        if source is None or not can_see(principal, source):
            raise CaseGone(case_id)
        target = self.cases.get(into)
        if target is None or not can_see(principal, target) or target["township"] != source["township"]:
            raise BadTarget("本镇(街道)没有这个工单")
        if self.canonical(into) is not None and self.canonical(into)["_id"] == case_id:
            raise BadTarget("不能并入自身")
        reason = f"镇(街道)合并重复诉求，并入{(self.canonical(into) or target)['tracking_no']}一并办理"
        try:
            stored = self.merge_cases(case_id, into, reason=reason, note=note, actor=actor_of(principal))
        except LookupError:
            raise BadTarget("本镇(街道)没有这个工单") from None
        return views.detail(stored, self.clock.now())


class CaseGone(Exception):
    pass


class BadTarget(Exception):
    pass
