"""dispatch's side of the resident's answer to a paused case (report.supplemented, from intake).

A case paused for the resident (awaiting_resident) resumes at once: its clock runs again, moved by
the working time the pause used (pausing.py), and ``case.resumed`` tells the holder, the resident's
view and the board. An answer to a case not (or no longer) waiting for the resident is kept on the
timeline and changes nothing else. A redelivered event is a no-op (``applying``).
"""
from __future__ import annotations

import functools
import logging

from shared.aggregates import Aggregates, NotFound, Unchanged
from shared.clock import Clock, iso
from shared.domain.ids import case_id_for

from . import pausing
from .cases import timeline_entry
from .transitions import Actor

log = logging.getLogger(__name__)
RESIDENT = Actor("resident", "resident")


def on_report_supplemented(cases: Aggregates, clock: Clock, event: dict) -> None:
    payload = event["payload"]
    case_id = payload.get("case_id") or case_id_for(payload["report_id"])
    now = clock.now()

    def change(case: dict):
        running = case.get("pause")
        if running and running.get("reason") == "awaiting_resident" and case.get("status") == "accepted":
            return pausing.resume(case, RESIDENT, now, why="resident_answered", note=payload["text"],
                                  caused_by=event["id"])
        if case.get("status") not in ("assigned", "accepted"):
            raise Unchanged
        case["timeline"].append(timeline_entry(now, "supplemented", actor="resident", actor_role="resident",
                                               note=payload["text"], report_id=payload["report_id"]))
        case["updated_at"] = iso(now)
        return []

    try:
        cases.mutate(case_id, change, applying=event["id"])
    except NotFound:
        log.warning("supplement for an unknown case", extra={"case_id": case_id, "township": event["township"]})


def handlers(cases: Aggregates, clock: Clock) -> dict:
    return {"report.supplemented": functools.partial(on_report_supplemented, cases, clock)}
