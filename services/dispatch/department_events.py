"""dispatch's side of the city departments' work (events from the escalation service).

- ``case.signed_off``: the lead department closed the case on its own responsibility (销号). The case,
  ``referred`` in dispatch since it left the township, becomes ``resolved`` with the department's
  resolution and its attachments (links; files at escalation's /dept/files/<id>), and ``case.resolved`` tells the resident's view (intake) and notify, which asks the
  resident to rate it.
- ``case.returned``: the lead department refused the case as not its responsibility (退单). The case
  stays ``referred`` (the township re-routes it or rules on it in escalation's API); dispatch records
  the return on its timeline so the township's staff see it on the case.
- ``department.part_submitted``: a co-handling department's opinion (配合意见) and its files, kept on
  the case and its timeline for the township's staff.

Each handler takes dispatch's case repository, the clock and the event; a redelivered event is a
no-op (``applying``), and so is an event about a case that is not (or no longer) referred.
Wiring (dispatch's composition root)::

    from .department_events import handlers as department_handlers
    handlers = {**DispatchHandlers(...).handlers(), **department_handlers(cases, ctx.clock)}
"""
from __future__ import annotations

import functools
import logging

from shared.aggregates import Aggregates, NotFound, Unchanged
from shared.clock import Clock, iso
from shared.domain.levels import UNIT_NAMES

from .cases import case_event, timeline_entry
from .timers import schedule

log = logging.getLogger(__name__)


def department_assignee(payload: dict) -> dict:
    return {"level": "department", "unit_id": payload.get("department_id"),
            "unit_name": payload.get("department_name") or UNIT_NAMES["department"],
            "lead_id": None, "lead_name": None, "lead_phone_masked": None}


def on_case_signed_off(cases: Aggregates, clock: Clock, event: dict) -> dict | None:
    """Resolves the referred case with the department's resolution; emits case.resolved."""
    payload = event["payload"]
    now = clock.now()

    def change(case: dict):
        if case.get("status") != "referred":
            raise Unchanged  # resolved already (a replay), or not at the departments
        department = department_assignee(payload)
        name = department["unit_name"]
        case["assignee"] = department
        case["status"] = "resolved"
        case["resolved_at"] = iso(now)
        case["resolution"] = payload.get("note")
        attachments = list(payload.get("attachments") or [])   # links, and files escalation serves
        case["signed_off"] = {"department_id": payload.get("department_id"), "department_name": name,
                              "at": event["occurred_at"], "by": payload.get("actor"), "attachments": attachments}
        case["updated_at"] = iso(now)
        case["timeline"].append(timeline_entry(now, "signed_off", actor=payload.get("actor") or name,
                                               actor_role="department", assignee=department,
                                               note=payload.get("note"), department_id=payload.get("department_id"),
                                               attachments=attachments or None))
        schedule(case)
        return [case_event("case.resolved", case, now, caused_by=event["id"], key="signed_off",
                           actor=payload.get("actor") or name, note=payload.get("note"), reason="市直部门依责销号")]

    try:
        return cases.mutate(payload["case_id"], change, applying=event["id"])
    except NotFound:
        log.warning("case.signed_off for a case dispatch does not have", extra={"case_id": payload["case_id"]})
        return None


def on_case_returned(cases: Aggregates, clock: Clock, event: dict) -> dict | None:
    """Records the department's return (reason and evidence) on the case; the township decides in escalation."""
    payload = event["payload"]
    return _record_while_referred(cases, clock, event, "department_returns", "department_returned", {
        "reason": payload["reason"], "evidence": list(payload.get("evidence") or [])})


def on_part_submitted(cases: Aggregates, clock: Clock, event: dict) -> dict | None:
    """Keeps a co-handling department's opinion (配合意见) and its files on the case, so the township's
    staff see them beside the lead department's sign-off, not only on the departments' desk."""
    payload = event["payload"]
    return _record_while_referred(cases, clock, event, "department_parts", "department_part", {
        "note": payload.get("note"), "attachments": list(payload.get("attachments") or [])})


def _record_while_referred(cases: Aggregates, clock: Clock, event: dict, field: str, entry_type: str,
                           details: dict) -> dict | None:
    """A department's word on a case still with the departments: kept in ``field`` (with who and
    when) and on the timeline. A case signed off or taken back meanwhile is left as it is."""
    payload = event["payload"]
    now = clock.now()
    department = {"department_id": payload["department_id"], "department_name": payload["department_name"]}

    def change(case: dict):
        if case.get("status") != "referred":
            raise Unchanged
        case.setdefault(field, []).append({**department, **details, "at": event["occurred_at"],
                                           "by": payload.get("actor")})
        case["updated_at"] = iso(now)
        shown = {k: (v or None) for k, v in details.items()}   # an empty list is left off the entry
        case["timeline"].append(timeline_entry(now, entry_type, actor=payload.get("actor") or payload["department_name"],
                                               actor_role="department", **department, **shown))
        return ()

    try:
        return cases.mutate(payload["case_id"], change, applying=event["id"])
    except NotFound:
        log.warning("%s for a case dispatch does not have", event["type"], extra={"case_id": payload["case_id"]})
        return None


def handlers(cases: Aggregates, clock: Clock) -> dict:
    """The departments' handlers bound to dispatch's case repository and clock, keyed by event type."""
    return {"case.signed_off": functools.partial(on_case_signed_off, cases, clock),
            "case.returned": functools.partial(on_case_returned, cases, clock),
            "department.part_submitted": functools.partial(on_part_submitted, cases, clock)}
