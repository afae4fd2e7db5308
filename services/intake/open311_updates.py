"""The servicerequestupdates feed (the GeoReport v2 extension FixMyStreet polls): each step of a
report's timeline that a case event made, as one ``request_update``.

- ``update_id`` is derived from the case event's id and the report (a merged case's event reaches
  every report that follows it), so the same step always has the same id and a client that polls
  overlapping windows — FixMyStreet asks for the last two hours every few minutes — skips what it has.
- ``status`` comes from one table (open311_status.py); ``external_status_code`` names our step.
- ``updated_datetime`` is when the step happened, in China time with its offset; the window
  [start_date, end_date] bounds it. Updates come oldest first, at most ``limit`` of them, so a client
  that reads a full page asks again from the last ``updated_datetime`` it got.
- ``description`` is the Chinese line the resident's tracking page shows, masked like every free text.
"""
from __future__ import annotations

from shared.clock import parse_iso
from shared.domain.ids import derived_id
from shared.domain.localtime import local_zone
from shared.domain.phones import mask_text

from .open311_status import external_status_code, feed_step, open311_status


def update_id(report: dict, step: dict) -> str:
    """Stable: the case event's id (and the report), or, for a step stored before event ids were kept,
    the report, the time and the kind of step."""
    source = step.get("event_id") or f"{step.get('at')}|{step.get('type')}"
    return derived_id("open311-update", report["_id"], source)


def local_w3(stored: str) -> str:
    return parse_iso(stored).astimezone(local_zone()).isoformat(timespec="seconds")


def update_view(report: dict, step: dict) -> dict:
    return {
        "update_id": update_id(report, step),
        "service_request_id": report["tracking_no"],
        "status": open311_status(step["type"], step.get("status") or report.get("status")),
        "updated_datetime": local_w3(step["at"]),
        "description": mask_text(step.get("text") or ""),
        "external_status_code": external_status_code(step["type"]),
    }


def updates_in(reports: list[dict], since: str, until: str, limit: int) -> list[dict]:
    """The feed's updates from ``reports`` whose step lies in [since, until] (stored ISO text), oldest first."""
    found: list[tuple[str, str, dict, dict]] = []
    for report in reports:
        for step in report.get("timeline") or ():
            if feed_step(step.get("type", "")) and since <= step["at"] <= until:
                found.append((step["at"], report["tracking_no"], report, step))
    found.sort(key=lambda item: (item[0], item[1]))
    return [update_view(report, step) for _, _, report, step in found[:limit]]
