"""Cases: the work item that climbs the chain. Pure functions that turn a decision into a new
case state plus the events it causes; the handlers and the HTTP layer store them."""
from __future__ import annotations

from datetime import datetime

from shared.clock import iso, parse_iso
from shared.domain.ids import case_id_for
from shared.domain.levels import UNIT_NAMES
from shared.domain.phones import mask_text
from shared.domain.workdays import add_working_seconds
from shared.events import make_event

from . import sla
from .case_photos import from_report
from .org import assignee_of
from .timers import schedule

def timeline_entry(at: datetime, kind: str, *, actor: str = "system", assignee: dict | None = None,
                   reason: str | None = None, note: str | None = None, **extra) -> dict:
    entry = {"at": iso(at), "type": kind, "actor": actor}
    if assignee:
        entry["level"] = assignee["level"]
        entry["unit_name"] = assignee["unit_name"]
        entry["lead_name"] = assignee.get("lead_name")
    if reason:
        entry["reason"] = reason
    if note:
        entry["note"] = note
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


def case_payload(case: dict, **extra) -> dict:
    payload = {
        "case_id": case["_id"], "report_id": case["report_id"], "tracking_no": case["tracking_no"],
        "category": case["category"], "tier": case["tier"], "status": case["status"],
        "assignee": case["assignee"], "due_at": case.get("resolve_due"), "promise_due": case.get("promise_due"),
        "urgent": case.get("urgent", False), "summary": case.get("summary"),
    }
    payload.update({k: v for k, v in extra.items() if v is not None})
    return payload


def case_event(kind: str, case: dict, at: datetime, *, caused_by: str | None, key: str = "", **extra) -> dict:
    return make_event(kind, case["township"], case_payload(case, **extra), at=at,
                      correlation_id=case["report_id"], caused_by=caused_by, key=key)


def apply_assignment(case: dict, unit: dict, policy: sla.SlaPolicy, at: datetime) -> None:
    """Puts the case with a unit's holder and starts that level's clocks."""
    assignee = assignee_of(unit)
    case["assignee"] = assignee
    case["level"] = assignee["level"]
    case["unit_id"] = unit["_id"]
    case["status"] = "assigned"
    case["step"] = case.get("step", 0) + 1
    case["assigned_at"] = iso(at)
    case["accepted_at"] = None
    case["warned"] = []  # warnings belong to one level's clocks
    case["level_paused_working_seconds"] = 0.0  # a pause moved the last level's clocks, not this one's
    set_deadlines(case, policy)
    case["updated_at"] = iso(at)
    schedule(case)


def set_deadlines(case: dict, policy: sla.SlaPolicy) -> None:
    """The current level's clocks, counted from the assignment at that level."""
    if case["level"] not in sla.LEVELS:
        return
    d = sla.deadlines(policy, case["tier"], case["level"], parse_iso(case["assigned_at"]))
    # Pauses at this level moved its clocks by the working time they used (pausing.py).
    paused = case.get("level_paused_working_seconds") or 0.0
    case["accept_due"] = iso(add_working_seconds(d.accept_due, paused))
    case["resolve_due"] = iso(add_working_seconds(d.resolve_due, paused))
    case["warn_accept_at"] = iso(add_working_seconds(d.warn_accept_at, paused))
    case["warn_resolve_at"] = iso(add_working_seconds(d.warn_resolve_at, paused))


def new_case(report: dict, township: str, unit: dict, policy: sla.SlaPolicy, at: datetime,
             *, located: bool, neighbourhood_id: str | None, skipped: list[dict], event_id: str,
             household: dict | None = None) -> tuple[dict, list[dict]]:
    tier = report.get("tier") or sla.tier_for(policy, report["category"])
    if tier == "instant":
        # A case exists because a person must answer after all; it gets the general clock.
        tier = "general"
    submitted_at = report["submitted_at"]
    case = {
        "_id": case_id_for(report["report_id"]), "township": township, "report_id": report["report_id"],
        "tracking_no": report["tracking_no"], "category": report["category"], "tier": tier,
        "urgent": bool(report.get("urgent")), "summary": report["description"][:60],
        "household_id": report.get("household_id"), "neighbourhood_id": neighbourhood_id,
        "located": located, "created_at": iso(at), "reported_at": submitted_at,
        "promise_due": iso(sla.promise_due(policy, tier, at)), "timeline": [],
        "breaches": [], "escalations": 0, "supervisions": [], "resolution": None, "resolved_at": None,
        # What the holder's page shows of where: the roster's household, the address and the phone's
        # location as reported (a number typed into the address is masked), and the photos (case_photos.py).
        "household": {"id": household["_id"], "head": household.get("head"), "address": household.get("address")}
        if household else None,
        "address": mask_text(report["address"]) if report.get("address") else None,
        "location": _location(report.get("location")), "photos": from_report(report),
    }
    apply_assignment(case, unit, policy, at)
    reason = None
    if not located:
        reason = "未能根据住户、地址或电话定位到邻，由镇(街道)分派"
    elif skipped:
        reason = "、".join(f"{UNIT_NAMES[u['level']]}“{u['name']}”岗位空缺" for u in skipped) + "，已跳过"
    case["timeline"].append(timeline_entry(at, "reported", actor="resident", channel=report.get("channel")))
    case["timeline"].append(timeline_entry(at, "assigned", assignee=case["assignee"], reason=reason))
    events = [case_event("case.assigned", case, at, caused_by=event_id, reason=reason)]
    return case, events


def _location(raw: dict | None) -> dict | None:
    """lat/lng as numbers, or nothing: the payload's location is a free mapping."""
    try:
        return {"lat": float(raw["lat"]), "lng": float(raw["lng"])} if raw else None
    except (KeyError, TypeError, ValueError):
        return None
