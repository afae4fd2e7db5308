"""Pausing a case's clock (挂起): the holder waits for the resident's answer (待群众补充材料) or for an
outside event (a repair crew's date), and the SLA clock stops.

Pure functions on the case, like transitions.py. A pause is allowed only on an accepted case, at most
``max_count`` times over the case's life and for at most ``max_total`` in all (the tier's
``pause`` limits in the township's policy, sla.PauseLimits). While paused the case's only timer is
the pause's end (``pause_end``: the cap, or the ``until`` the holder gave for an outside event); the
SLA timers are not armed. On resume the current level's deadlines, the warning points and the
resident's promise move later by the *working* time the pause used (workdays.working_seconds_between),
so a pause over a weekend costs the holder nothing and gains them nothing.

Case fields: ``pause`` (the running pause or None), ``pauses`` (finished ones, each with its calendar
and working seconds), ``paused_seconds`` / ``paused_working_seconds`` (totals over the case's life)
and ``level_paused_working_seconds`` (since the assignment at the current level: set_deadlines adds it).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from shared.clock import iso, parse_iso
from shared.domain.ids import new_id
from shared.domain.workdays import add, add_working_seconds, working_seconds_between

from . import sla
from .cases import case_event, timeline_entry
from .timers import schedule

PAUSE_REASONS = {"awaiting_resident": "待群众补充材料", "awaiting_external": "等待外部事项"}
END_REASONS = {
    "holder": "经办人恢复办理", "resident_answered": "群众已补充材料", "cap": "挂起时间已达上限，自动恢复计时",
    "until": "约定时间已到，自动恢复计时", "moved": "工单已转交或办结，挂起结束",
}
# The deadline fields a resume moves later, and the resident's promise.
SHIFTED = ("accept_due", "resolve_due", "warn_accept_at", "warn_resolve_at", "promise_due")
DAY = 86400


class PauseRefused(Exception):
    """A pause that breaks a rule: 409 for the case's state and limits, 422 when ``field`` is named."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def is_paused(case: dict) -> bool:
    return bool(case.get("pause")) and case.get("status") == "accepted"


def _used(case: dict, limits: sla.PauseLimits) -> float:
    """Pause time used so far, in the cap's own kind of time (working or calendar seconds)."""
    if limits.max_total.unit == "working_days":
        return case.get("paused_working_seconds", 0.0)
    return case.get("paused_seconds", 0.0)


def _cap_at(case: dict, limits: sla.PauseLimits, since: datetime) -> datetime:
    """When a pause starting at ``since`` reaches the case's total cap."""
    if limits.max_total.unit == "working_days":
        left = limits.max_total.amount * DAY - _used(case, limits)
        return add_working_seconds(since, max(left, 0))
    total = (add(since, limits.max_total) - since).total_seconds()
    return since + timedelta(seconds=max(total - _used(case, limits), 0))


def check_can_pause(case: dict, limits: sla.PauseLimits, at: datetime, until: datetime | None) -> datetime:
    """The moment the pause will end by itself; raises PauseRefused naming the rule it breaks."""
    if case.get("status") != "accepted":
        raise PauseRefused("请先接单再挂起" if case.get("status") == "assigned" else "工单已不在办理中，不能挂起")
    if case.get("pause"):
        raise PauseRefused("工单已挂起，请先恢复办理")
    count = len(case.get("pauses") or [])
    if limits.max_count == 0:
        raise PauseRefused("本镇(街道)规定该时限等级的工单不能挂起")
    if count >= limits.max_count:
        raise PauseRefused(f"已挂起{count}次，达到上限{limits.max_count}次")
    cap = _cap_at(case, limits, at)
    if cap <= at:
        raise PauseRefused(f"累计挂起时间已达上限{limits.max_total}")
    if until is not None:
        if until <= at:
            raise PauseRefused("恢复时间必须晚于现在", field="until")
        if until > cap:
            raise PauseRefused(f"恢复时间超过挂起上限，最晚{iso(cap)}", field="until")
        return until
    return cap


def pause(case: dict, limits: sla.PauseLimits, actor, at: datetime, *, reason: str, note: str,
          until: datetime | None = None) -> list[dict]:
    resume_at = check_can_pause(case, limits, at, until)
    case["pause"] = {"id": new_id()[:12], "reason": reason, "reason_text": PAUSE_REASONS[reason], "note": note,
                     "until": iso(until) if until else None, "since": iso(at), "resume_at": iso(resume_at),
                     "by": actor.name, "level": case["level"], "step": case.get("step"), "unit_name": case["assignee"]["unit_name"]}
    case["timeline"].append(timeline_entry(at, "paused", actor=actor.name, actor_role=actor.role,
                                           assignee=case["assignee"], reason=PAUSE_REASONS[reason], note=note,
                                           pause_reason=reason, until=case["pause"]["until"],
                                           resume_at=iso(resume_at)))
    case["updated_at"] = iso(at)
    schedule(case)
    return [case_event("case.paused", case, at, caused_by=None, reason=PAUSE_REASONS[reason], note=note,
                       actor=actor.name, pause_reason=reason, resume_at=iso(resume_at),
                       paused_until=case["pause"]["until"])]


def resume(case: dict, actor, at: datetime, *, why: str, note: str | None = None,
           caused_by: str | None = None) -> list[dict]:
    """Ends the running pause and moves the deadlines by the working time it used."""
    running = case.get("pause")
    if not running:
        raise PauseRefused("工单未挂起，无需恢复")
    since = parse_iso(running["since"])
    end = max(at, since)
    seconds = (end - since).total_seconds()
    working = working_seconds_between(since, end)
    for field in SHIFTED:
        if case.get(field):
            case[field] = iso(add_working_seconds(parse_iso(case[field]), working))
    case["paused_seconds"] = case.get("paused_seconds", 0.0) + seconds
    case["paused_working_seconds"] = case.get("paused_working_seconds", 0.0) + working
    case["level_paused_working_seconds"] = case.get("level_paused_working_seconds", 0.0) + working
    case.setdefault("pauses", []).append({**running, "ended_at": iso(end), "end_reason": why,
                                          "ended_by": actor.name, "seconds": seconds, "working_seconds": working})
    case["pause"] = None
    case["timeline"].append(timeline_entry(at, "resumed", actor=actor.name, actor_role=actor.role,
                                           assignee=case["assignee"], reason=END_REASONS[why], note=note,
                                           paused_seconds=round(seconds), due=case.get("resolve_due")))
    case["updated_at"] = iso(at)
    schedule(case)
    return [case_event("case.resumed", case, at, caused_by=caused_by, key="resumed", reason=END_REASONS[why],
                       note=note, actor=actor.name, pause_reason=running["reason"], paused_seconds=round(seconds))]


def end_if_paused(case: dict, actor, at: datetime, caused_by: str | None = None) -> list[dict]:
    """A paused case that leaves its holder (escalated, reassigned, resolved) resumes first."""
    if not case.get("pause"):
        return []
    return resume(case, actor, at, why="moved", caused_by=caused_by)
