"""One table: a step of a report's timeline as an Open311 status, for the servicerequestupdates feed.

FixMyStreet (perllib/Open311.pm ``map_state``) lower-cases a status and turns "_" into spaces, then
maps ``fixed`` → "fixed - council", ``not councils responsibility`` → "not responsible",
``no further action`` → "unable to fix", ``open`` → "confirmed", ``closed`` → "closed" (or "fixed -
council" when the body has no extended statuses); anything else it keeps, so ``IN_PROGRESS``,
``ACTION_SCHEDULED``, ``INVESTIGATING`` and ``DUPLICATE`` become its states of the same names.

Every status here is one of GeoReport v2's ``open``/``closed`` or an extended status FixMyStreet
knows. Not produced: ``NOT_COUNCILS_RESPONSIBILITY`` and ``NO_FURTHER_ACTION`` (a township handles
every report made in it: a department's refusal goes back to the township, never to the
resident) and ``INTERNAL_REFERRAL`` (FixMyStreet counts it as closed, while a case handed to a city
department is still ours to finish).
"""
from __future__ import annotations

OPEN, CLOSED = "open", "closed"
IN_PROGRESS, ACTION_SCHEDULED, INVESTIGATING = "IN_PROGRESS", "ACTION_SCHEDULED", "INVESTIGATING"
FIXED, DUPLICATE = "FIXED", "DUPLICATE"

# A step of the timeline (its type) → the status it tells. None: the report's status at that step.
STEP_STATUS: dict[str, str | None] = {
    "case.assigned": OPEN,              # 已派单：the lead has not accepted yet
    "case.accepted": IN_PROGRESS,       # 已接单
    "case.progress": IN_PROGRESS,       # 办理进展
    "case.escalated": INVESTIGATING,    # climbed a level (邻→组→片→村→镇): the next post looks into it
    "case.reassigned": OPEN,            # the township gave it to another post, which must accept it
    "case.referred": ACTION_SCHEDULED,  # handed to a city department (still ours to finish)
    "case.resolved": FIXED,             # 已办结 (the resident is asked to rate it)
    "case.reopened": OPEN,              # the resident was not satisfied: handled again
    "case.merged": DUPLICATE,           # joined a case about the same problem
    "linked": DUPLICATE,                # the resident chose to follow an existing report instead
    "answered": CLOSED,                 # a common question the bot answered at once
    "not_answered": OPEN,               # …and the resident said it did not help: handled as a case
    "case.supervised": None,            # 督办 does not change where the case stands
    "case.updated": None,
}
# The report's own status (reports.STATUS_NAMES) → the status it tells.
REPORT_STATUS: dict[str, str] = {
    "submitted": OPEN, "assigned": OPEN, "accepted": IN_PROGRESS, "referred": ACTION_SCHEDULED,
    "resolved": FIXED, "closed": CLOSED, "answered": CLOSED, "merged": DUPLICATE,
}


def feed_step(step_type: str) -> bool:
    """Does this step of the timeline appear in the updates feed? (Not the submission itself, which the
    client already knows, nor the resident's own rating, which the client did not make.)"""
    return step_type in STEP_STATUS


def open311_status(step_type: str, report_status: str | None) -> str:
    """The Open311 status a step tells; a step that does not change it falls back on the report's status."""
    status = STEP_STATUS.get(step_type)
    if status is None:
        status = REPORT_STATUS.get(report_status or "", OPEN)
    return status


def external_status_code(step_type: str) -> str:
    """Our own name for the step (FixMyStreet keeps it for response templates): "escalated", "resolved"…"""
    return step_type.split(".", 1)[-1]
