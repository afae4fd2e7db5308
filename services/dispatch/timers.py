"""SLA timers as data on the case: which deadline comes next, and whether a claimed one still holds.

A case carries one pending timer: ``timer`` = {kind, step, due} and its ``timer_due`` (indexed,
claimed by shared.sweeper.DueSweeper). Every state change calls ``schedule`` so the timer always
belongs to the current state; a timer claimed before a change is recognised as stale when it
fires and does nothing but reschedule.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from shared.clock import iso

# status → (timer kind, case field holding its due time); warnings first, they come earlier.
PENDING = {
    "assigned": (("warn_accept", "warn_accept_at"), ("accept", "accept_due")),
    "accepted": (("warn_resolve", "warn_resolve_at"), ("resolve", "resolve_due")),
}
STATUS_OF = {kind: status for status, pairs in PENDING.items() for kind, _ in pairs}
DUE_FIELD = {kind: field for pairs in PENDING.values() for kind, field in pairs}
# A warning's deadline: once that is past too, the breach says everything the warning would.
DEADLINE_OF = {"warn_accept": "accept_due", "warn_resolve": "resolve_due"}


class Timer(NamedTuple):
    due: str
    kind: str


PAUSE_END = "pause_end"  # a paused case waits only for its pause's end (pausing.py)


def next_timer(case: dict) -> Timer | None:
    """The earliest deadline still pending in the case's current state; None for closed cases."""
    if case.get("pause") and case.get("status") == "accepted":
        return Timer(case["pause"]["resume_at"], PAUSE_END)
    warned = set(case.get("warned") or ())
    pending = [Timer(case[field], kind) for kind, field in PENDING.get(case.get("status"), ())
               if case.get(field) and kind not in warned]
    return min(pending) if pending else None


def schedule(case: dict) -> None:
    """Recomputes the case's timer; call after every state change."""
    timer = next_timer(case)
    case["timer"] = {"kind": timer.kind, "step": case.get("step"), "due": timer.due} if timer else None
    case["timer_due"] = timer.due if timer else None


def still_due(case: dict, timer: dict | None, now: datetime) -> bool:
    """Is the claimed timer still the one this case is waiting on, and has its time come?"""
    if timer and timer.get("kind") == PAUSE_END:
        running = case.get("pause")
        return bool(running) and case.get("status") == "accepted" and case.get("step") == timer.get("step") \
            and running["resume_at"] == timer.get("due") and running["resume_at"] <= iso(now)
    if not timer or timer.get("kind") not in STATUS_OF:
        return False
    kind = timer["kind"]
    if case.get("step") != timer.get("step") or case.get("status") != STATUS_OF[kind]:
        return False
    if kind in (case.get("warned") or ()):
        return False
    due = case.get(DUE_FIELD[kind])
    return bool(due) and due <= iso(now)
