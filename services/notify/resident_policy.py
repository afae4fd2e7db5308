"""Which news of a case reaches the resident who reported it, and how often: one small rule.

Texts cost money and teach people to ignore them, so by default ("essential") a resident hears what
they want to know, once each, and anything that needs their answer:

- ``accepted``    — the first acceptance of their case (case.accepted); a case that climbs
                    邻→组→片→村→镇 is accepted at every level, but the resident is told once;
- ``merged``      — their report joined a case about the same problem (case.merged), once;
- ``department``  — the case was handed to a city department (department.assigned, the lead
                    department only), once — a re-route after a return is not news for them;
- ``resolved``    — resolved, with how to rate (report.rating_requested): it asks for their answer,
                    so every resolution is told (a reopened case resolved again asks again);
- ``more_information`` — the holder paused the case to wait for them (case.paused, awaiting_resident:
                    请补充材料): it asks for their answer, so it is told every time.

The rest (escalations, progress, supervision) lives on the tracking page and the Open311 feed.
A township may choose "every_step" instead: every acceptance and every hand-over is texted.

A new kind of news is one more row of RESIDENT_NEWS.
"""
from __future__ import annotations

ESSENTIAL, EVERY_STEP = "essential", "every_step"
POLICIES = (ESSENTIAL, EVERY_STEP)
DEFAULT_POLICY = ESSENTIAL
POLICY_TEXT = {ESSENTIAL: "只发关键短信：首次接单、转市直部门、合并办理、办结请评价（每件各一次）",
               EVERY_STEP: "每一步都发短信：每一级接单、转部门、合并、办结请评价"}

ONCE, ANSWER = "once", "answer"   # told once per report / told each time (it asks for an answer)

# event type -> (the news it carries, how often "essential" tells it)
RESIDENT_NEWS: dict[str, tuple[str, str]] = {
    "case.accepted": ("accepted", ONCE),
    "case.merged": ("merged", ONCE),
    "department.assigned": ("department", ONCE),
    "report.rating_requested": ("resolved", ANSWER),
    "case.paused": ("more_information", ANSWER),
}


def news_of(event_type: str) -> str | None:
    """The news an event carries for a resident; None: the event is never texted to a resident."""
    row = RESIDENT_NEWS.get(event_type)
    return row[0] if row else None


def needs_once(policy: str, event_type: str) -> bool:
    """Under ``policy``, is this event's news told at most once per report?"""
    row = RESIDENT_NEWS.get(event_type)
    return bool(row) and policy != EVERY_STEP and row[1] == ONCE


def tell(policy: str, event_type: str, first_told_by: str | None, event_id: str) -> bool:
    """Does the resident get this event's text? ``first_told_by``: the event that first told this news
    for this report (None: not told yet). The same event again (a redelivery) is still that event."""
    if news_of(event_type) is None:
        return False
    if not needs_once(policy, event_type):
        return True
    return first_told_by is None or first_told_by == event_id
