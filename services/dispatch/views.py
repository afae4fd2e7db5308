"""How a case reads to leads and staff: its current deadline and whether it is due soon or overdue."""
from __future__ import annotations

from datetime import datetime

from shared.clock import iso
from shared.domain.statuses import OPEN_STATUSES

from .figures import figures
from .timers import PENDING

# What a lead's or staff's list can be narrowed to.
SHOWS = ("open", "due_soon", "overdue", "resolved", "referred", "all", "paused")


def current_deadline(case: dict) -> tuple[str | None, str | None]:
    """(warning point, deadline) of what the holder owes now: acceptance, or a result."""
    pairs = PENDING.get(case.get("status"))
    if not pairs:
        return None, None
    (_, warn_field), (_, due_field) = pairs
    return case.get(warn_field), case.get(due_field)


def timing(case: dict, now: datetime) -> str | None:
    """'overdue', 'due_soon' (past the warning point), 'on_time' or 'paused'; None once the case left the chain."""
    warn_at, due = current_deadline(case)
    if due is None:
        return None
    if case.get("pause") and case.get("status") == "accepted":
        return "paused"  # the clock stands still (pausing.py)
    at = iso(now)
    if due <= at:
        return "overdue"  # the sweeper escalates it on its next pass
    return "due_soon" if warn_at and warn_at <= at else "on_time"


def unanswered(case: dict) -> int:
    return sum(1 for s in case.get("supervisions", []) if not s.get("answered_at"))


def summary(case: dict, now: datetime) -> dict:
    _, due = current_deadline(case)
    promise = case.get("promise_due")
    return {**case, "deadline": due, "timing": timing(case, now),
            "promise_overdue": bool(promise and case["status"] in OPEN_STATUSES and promise <= iso(now)
                                    and not case.get("pause")),  # a paused promise moves on resume
            "unanswered_supervisions": unanswered(case)}


def detail(case: dict, now: datetime) -> dict:
    return {**summary(case, now), "figures": figures(case.get("timeline", []))}


def shown(view: dict, show: str) -> bool:
    if show == "all":
        return True
    if show in ("resolved", "referred"):
        return view["status"] == show
    if view["status"] not in OPEN_STATUSES:
        return False
    return show == "open" or view["timing"] == show  # "paused" too


def ordered(views: list[dict]) -> list[dict]:
    """Open cases nearest their deadline first; the rest after them, newest first (sorts are stable)."""
    newest_first = sorted(views, key=lambda v: v.get("created_at") or "", reverse=True)
    return sorted(newest_first, key=lambda v: (v["deadline"] is None, v["deadline"] or ""))
