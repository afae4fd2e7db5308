"""The photos a case has, as dispatch learns them: intake keeps the bytes and serves them (GET
/api/v1/photos/<id> at the same public address), dispatch keeps only the list it shows on the lead's
and staff's case pages.

Three events name photos: ``report.submitted`` (the report's own, read by handlers.py when the case
opens), ``report.supplemented`` (the resident's answer to a paused case) and ``report.photo_added``
(any photo attached later, by the resident, the lead or the township's staff). A photo is known by
its address: the same one twice (a redelivery, or the report's photo named by two events) is listed
once. A photo that arrives before its case is opened (the two events may be delivered in either
order) is handed back to the broker to be delivered again (BeforeItsCase).
"""
from __future__ import annotations

import functools
import logging

from shared.aggregates import Aggregates, NotFound, Unchanged
from shared.clock import Clock, iso
from shared.domain.ids import case_id_for

log = logging.getLogger(__name__)
# Who may have added a photo (report.photo_added's ``by``); the first two count for 办结.
HANDLERS_KINDS = ("lead", "staff")
MAX_LISTED = 40   # intake allows 9 uploads a report; links given by API clients are bounded here


class BeforeItsCase(Exception):
    """The photo's event came before the case's: the broker delivers it again a little later."""


def photo_entry(url: str, by: str, at: str, photo_id: str | None = None) -> dict:
    return {"url": url, "by": by, "at": at, "id": photo_id}


def add_photos(case: dict, entries: list[dict]) -> bool:
    """Appends the photos the case does not list yet; False when nothing was new."""
    listed = case.setdefault("photos", [])
    known = {p["url"] for p in listed}
    added = False
    for entry in entries:
        if entry["url"] in known or len(listed) >= MAX_LISTED:
            continue
        known.add(entry["url"])
        listed.append(entry)
        added = True
    return added


def from_report(report: dict) -> list[dict]:
    """The photos named by report.submitted: the resident's."""
    return [photo_entry(url, "resident", report["submitted_at"]) for url in report.get("photos") or ()]


def on_photo_added(cases: Aggregates, clock: Clock, event: dict) -> None:
    p = event["payload"]
    case_id = p.get("case_id") or case_id_for(p["report_id"])

    def change(case: dict):
        if not add_photos(case, [photo_entry(p["url"], p["by"], p["added_at"], p["photo_id"])]):
            raise Unchanged
        case["updated_at"] = iso(clock.now())
        return []

    try:
        cases.mutate(case_id, change, applying=event["id"])
    except NotFound:
        raise BeforeItsCase(f"photo for {p['report_id']} before its case") from None


def on_supplemented(cases: Aggregates, clock: Clock, event: dict) -> None:
    p = event["payload"]
    if not p.get("photos"):
        return
    at = p.get("supplemented_at") or event["occurred_at"]

    def change(case: dict):
        if not add_photos(case, [photo_entry(url, "resident", at) for url in p["photos"]]):
            raise Unchanged
        case["updated_at"] = iso(clock.now())
        return []

    try:
        cases.mutate(p.get("case_id") or case_id_for(p["report_id"]), change)
    except NotFound:
        log.warning("supplement's photos for an unknown case", extra={"township": event["township"]})


def resolved_with(case: dict) -> dict[int, int]:
    """For each 办结 on the timeline (by its index), how many photos the holder added for it: those
    added since the previous 办结 (or 重新办理) up to it. Counted when read, so a photo whose event
    reached dispatch after the 办结 itself is still counted."""
    added = sorted(p["at"] for p in case.get("photos") or () if p.get("by") in HANDLERS_KINDS and p.get("at"))
    counts, since = {}, ""
    for index, entry in enumerate(case.get("timeline") or ()):
        if entry.get("type") == "resolved":
            counts[index] = sum(1 for at in added if since < at <= entry["at"])
        if entry.get("type") in ("resolved", "reopened"):
            since = entry["at"]
    return counts


def handlers(cases: Aggregates, clock: Clock) -> dict:
    return {"report.photo_added": functools.partial(on_photo_added, cases, clock),
            "report.supplemented": functools.partial(on_supplemented, cases, clock)}
