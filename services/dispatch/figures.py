"""Figures derived from a case's timeline alone, so any stored or exported timeline can be measured."""
from __future__ import annotations

from collections import Counter

from shared.clock import parse_iso

CLIMBS = ("escalated", "referred")


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (parse_iso(end) - parse_iso(start)).total_seconds()


def _first(timeline: list[dict], kind: str) -> dict | None:
    return next((e for e in timeline if e["type"] == kind), None)


def figures(timeline: list[dict]) -> dict:
    """Time to accept and to resolve (seconds from the first assignment), levels climbed, breaches.

    Time to accept is until anyone first accepted, whatever level that was at: what the resident
    waited for before a person took the problem on.
    """
    opened = _first(timeline, "assigned")
    accepted = _first(timeline, "accepted")
    resolved = _first(timeline, "resolved")
    start = opened["at"] if opened else None
    breaches = Counter(e.get("level") for e in timeline if e["type"] == "breached")
    supervised = [e for e in timeline if e["type"] == "supervised"]
    answered = {e.get("supervision_id") for e in timeline if e["type"] == "supervision_answered"}
    return {
        "time_to_accept": _seconds(start, accepted["at"] if accepted else None),
        "time_to_resolve": _seconds(start, resolved["at"] if resolved else None),
        "levels_climbed": sum(1 for e in timeline if e["type"] in CLIMBS),
        "escalated_by_breach": sum(1 for e in timeline if e["type"] in CLIMBS and e.get("actor") == "system"),
        "breaches": sum(breaches.values()),
        "breaches_per_level": dict(breaches),
        "warnings": sum(1 for e in timeline if e["type"] == "warned"),
        "reassignments": sum(1 for e in timeline if e["type"] == "reassigned"),
        "supervisions": len(supervised),
        "supervisions_unanswered": sum(1 for e in supervised if e.get("supervision_id") not in answered),
        "resolved_at_level": resolved.get("level") if resolved else None,
    }
