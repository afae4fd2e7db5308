"""Every change a case can go through after it is opened, as pure functions.

Each checks the case's state (raising WrongState with a reason the caller can show), changes the
case in place, appends to its timeline (append-only: who, when, why), reschedules its timer and
returns the events the change causes. Storage and access checks are the caller's business.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from shared.clock import iso, parse_iso
from shared.domain.ids import new_id
from shared.domain.levels import UNIT_NAMES
from shared.domain.statuses import CLOSED_STATUSES
from shared.domain.workdays import add_working_seconds

from . import sla
from .pausing import end_if_paused
from .case_photos import sent_with
from .cases import apply_assignment, case_event, set_deadlines, timeline_entry
from .timers import schedule


class Actor(NamedTuple):
    name: str
    role: str


SYSTEM = Actor("system", "system")

# What a lead may give as the reason for passing a case up (code → the text people read).
ESCALATION_REASONS = {
    "beyond_ability": "超出本级处理能力",
    "needs_department": "需要部门协调解决",
    "not_my_neighbourhood": "不属于本辖区",
}
BREACH_REASONS = {"accept": "超时未接单", "resolve": "超时未办结"}
WARNING_REASONS = {"warn_accept": "即将超时未接单", "warn_resolve": "即将超时未办结"}
DEPARTMENT_ASSIGNEE = {"level": "department", "unit_id": None, "unit_name": UNIT_NAMES["department"],
                       "lead_id": None, "lead_name": None, "lead_phone_masked": None}
STATUS_TEXT = {"assigned": "待接单", "accepted": "办理中", "resolved": "已办结", "referred": "已上报市直部门",
               "merged": "已合并到同类诉求"}


class WrongState(Exception):
    """The action does not apply to the case as it is now (HTTP 409)."""


def _entry(case: dict, at: datetime, kind: str, actor: Actor, **fields) -> None:
    case["timeline"].append(timeline_entry(at, kind, actor=actor.name, actor_role=actor.role, **fields))
    case["updated_at"] = iso(at)


def _require_open(case: dict, action: str) -> None:
    if case["status"] in CLOSED_STATUSES:
        raise WrongState(f"工单{STATUS_TEXT[case['status']]}，不能{action}")


# -- the holder's actions -------------------------------------------------------------------------

def accept(case: dict, actor: Actor, at: datetime, note: str | None = None) -> list[dict]:
    _require_open(case, "接单")
    if case["status"] != "assigned":
        raise WrongState("工单已接单，不能重复接单")
    case["status"] = "accepted"
    case["accepted_at"] = iso(at)
    _entry(case, at, "accepted", actor, assignee=case["assignee"], note=note)
    schedule(case)
    return [case_event("case.accepted", case, at, caused_by=None, actor=actor.name, note=note)]


def progress(case: dict, actor: Actor, at: datetime, note: str) -> list[dict]:
    _require_open(case, "填报进展")
    if case["status"] != "accepted":
        raise WrongState("请先接单再填报进展")
    _entry(case, at, "progress", actor, note=note)
    return [case_event("case.progress", case, at, caused_by=None, actor=actor.name, note=note)]


def resolve(case: dict, actor: Actor, at: datetime, note: str, photos: list[str] | None = None) -> list[dict]:
    """办结. ``photos``: the addresses of the photos sent with it (case_photos.sent_field), kept on
    its timeline entry so the 办结 says how many it had without comparing intake's clock with ours."""
    _require_open(case, "办结")
    if case["status"] != "accepted":
        raise WrongState("请先接单再办结")
    resumed = end_if_paused(case, actor, at)
    case["status"] = "resolved"
    case["resolved_at"] = iso(at)
    case["resolution"] = note
    _entry(case, at, "resolved", actor, assignee=case["assignee"], note=note, photos=sent_with(photos))
    schedule(case)
    return resumed + [case_event("case.resolved", case, at, caused_by=None, actor=actor.name, note=note)]


def answer_supervision(case: dict, supervision_id: str, actor: Actor, at: datetime, note: str) -> list[dict]:
    supervision = next((s for s in case.get("supervisions", []) if s["id"] == supervision_id), None)
    if supervision is None:
        raise LookupError(supervision_id)
    if supervision["answered_at"]:
        raise WrongState("该督办已答复")
    supervision.update(answered_at=iso(at), answer=note, answered_by=actor.name)
    _entry(case, at, "supervision_answered", actor, note=note, supervision_id=supervision_id)
    # The resident sees the answer as progress; staff see it against their supervision.
    return [case_event("case.progress", case, at, caused_by=None, actor=actor.name, note=note,
                       reason="答复督办")]


# -- moving along the chain -----------------------------------------------------------------------

def move_up(case: dict, unit: dict, policy: sla.SlaPolicy, at: datetime, *, reason: str, actor: Actor,
            note: str | None = None, skipped: list[dict] = (), caused_by: str | None = None) -> list[dict]:
    """Hands the case to the next level's holder, whose clocks start now."""
    _require_open(case, "上报")
    resumed = end_if_paused(case, actor, at, caused_by=caused_by)
    previous = case["assignee"]
    apply_assignment(case, unit, policy, at)
    case["escalations"] = case.get("escalations", 0) + 1
    skipped_text = "、".join(f"{UNIT_NAMES[u['level']]}“{u['name']}”岗位空缺" for u in skipped) or None
    _entry(case, at, "escalated", actor, assignee=case["assignee"], reason=reason, note=note,
           from_level=previous["level"], from_unit=previous["unit_name"], skipped=skipped_text)
    return resumed + [case_event("case.escalated", case, at, caused_by=caused_by, key="escalated", previous=previous,
                       reason=reason, note=note, actor=actor.name)]


def refer(case: dict, at: datetime, *, reason: str, actor: Actor, note: str | None = None,
          caused_by: str | None = None) -> list[dict]:
    """Beyond the township: the city's departments take over (the escalation service)."""
    _require_open(case, "上报")
    resumed = end_if_paused(case, actor, at, caused_by=caused_by)
    previous = case["assignee"]
    case.update(status="referred", level="department", unit_id=None, assignee=dict(DEPARTMENT_ASSIGNEE),
                referred_at=iso(at), step=case.get("step", 0) + 1)
    case["escalations"] = case.get("escalations", 0) + 1
    _entry(case, at, "referred", actor, assignee=case["assignee"], reason=reason, note=note,
           from_level=previous["level"], from_unit=previous["unit_name"])
    schedule(case)
    return resumed + [case_event("case.referred", case, at, caused_by=caused_by, key="referred", previous=previous,
                       reason=reason, note=note, actor=actor.name)]


# -- the SLA clock --------------------------------------------------------------------------------

def warn(case: dict, kind: str, at: datetime, *, caused_by: str) -> list[dict]:
    due = case["accept_due"] if kind == "warn_accept" else case["resolve_due"]
    reason = WARNING_REASONS[kind]
    _entry(case, at, "warned", SYSTEM, assignee=case["assignee"], reason=reason,
           deadline=kind.removeprefix("warn_"), due=due)
    return [case_event("sla.warning", case, at, caused_by=caused_by, key="warning", reason=reason,
                       actor=SYSTEM.name, due_at=due)]


def breach(case: dict, kind: str, at: datetime, *, caused_by: str) -> list[dict]:
    """Records the breach against the level that let the time run out; escalating is the caller's."""
    due = case["accept_due"] if kind == "accept" else case["resolve_due"]
    reason = BREACH_REASONS[kind]
    case.setdefault("breaches", []).append({"level": case["level"], "unit_id": case.get("unit_id"),
                                            "unit_name": case["assignee"]["unit_name"], "kind": kind,
                                            "due": due, "at": iso(at), "step": case.get("step")})
    _entry(case, at, "breached", SYSTEM, assignee=case["assignee"], reason=reason, deadline=kind, due=due)
    return [case_event("sla.breached", case, at, caused_by=caused_by, key="breached", reason=reason,
                       actor=SYSTEM.name, due_at=due)]


# -- the township's actions -----------------------------------------------------------------------

def reassign(case: dict, unit: dict, policy: sla.SlaPolicy, actor: Actor, at: datetime,
             note: str | None = None) -> list[dict]:
    _require_open(case, "改派")
    if case.get("unit_id") == unit["_id"]:
        raise WrongState("工单已由该单位办理，无需改派")
    resumed = end_if_paused(case, actor, at)
    previous = case["assignee"]
    apply_assignment(case, unit, policy, at)
    _entry(case, at, "reassigned", actor, assignee=case["assignee"], note=note,
           from_level=previous["level"], from_unit=previous["unit_name"])
    return resumed + [case_event("case.reassigned", case, at, caused_by=None, previous=previous, note=note,
                       actor=actor.name)]


def recategorise(case: dict, policy: sla.SlaPolicy, actor: Actor, at: datetime, *, category: str | None,
                 tier: str | None, note: str | None = None) -> list[dict]:
    """A new category brings its default tier unless a tier is given; the clocks are recounted."""
    _require_open(case, "修改分类")
    new_category = category or case["category"]
    new_tier = tier or (sla.tier_for(policy, new_category) if category else case["tier"])
    if new_tier == "instant":
        new_tier = "general"  # as at opening: a person answers, on the general clock
    if (new_category, new_tier) == (case["category"], case["tier"]):
        raise WrongState("分类和时限等级均未改变")
    before = {"category": case["category"], "tier": case["tier"]}
    case["category"], case["tier"] = new_category, new_tier
    set_deadlines(case, policy)
    case["promise_due"] = iso(add_working_seconds(sla.promise_due(policy, new_tier, parse_iso(case["created_at"])),
                                                  case.get("paused_working_seconds") or 0.0))
    _entry(case, at, "recategorised", actor, note=note, from_category=before["category"],
           from_tier=before["tier"], category=new_category, tier=new_tier)
    schedule(case)
    return [case_event("case.updated", case, at, caused_by=None, note=note, actor=actor.name,
                       reason="修改分类或时限等级")]


def supervise(case: dict, actor: Actor, at: datetime, note: str) -> list[dict]:
    _require_open(case, "督办")
    supervision = {"id": new_id()[:12], "note": note, "by": actor.name, "at": iso(at), "level": case["level"],
                   "unit_name": case["assignee"]["unit_name"], "answered_at": None, "answer": None}
    case.setdefault("supervisions", []).append(supervision)
    _entry(case, at, "supervised", actor, assignee=case["assignee"], note=note, supervision_id=supervision["id"])
    return [case_event("case.supervised", case, at, caused_by=None, note=note, actor=actor.name)]

