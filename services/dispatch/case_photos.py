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
import re

from marshmallow import fields, validate

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


PHOTO_ADDRESS = re.compile(r"\A/api/v1/photos/[0-9a-f]{32}\Z")   # intake's photos.photo_path(photo_id)
MAX_SENT = 9   # intake keeps at most 9 photos a report


def sent_field(**kwargs) -> fields.List:
    """办结's ``photos``, for the API's schema and the page's form alike: the addresses intake answered
    the 办结's uploads with, at most MAX_SENT. Which photos may be named: the case's own. A photo the
    case lists is; one it does not list yet is taken as sent — intake's report.photo_added may reach
    dispatch after the 办结 it was uploaded for, so dispatch cannot check it at that moment (see
    resolved_with and docs/leads-and-staff-api.md)."""
    return fields.List(
        fields.String(validate=validate.Regexp(PHOTO_ADDRESS, error="照片地址不正确，请重新上传")),
        validate=validate.Length(max=MAX_SENT, error=f"办结最多附{MAX_SENT}张照片"), **kwargs)


def sent_with(addresses: list[str] | None) -> list[str] | None:
    """What a 办结's timeline entry keeps of the photos it names: each once, in order; None when it
    names none (an older client: resolved_with counts it by time)."""
    return None if addresses is None else list(dict.fromkeys(addresses))


def resolved_with(case: dict) -> dict[int, int]:
    """For each 办结 on the timeline (by its index), how many photos the holder sent with it.

    A 办结 that names its photos (``photos`` on its entry: what the page's script or an API client
    learnt from intake's upload answers) is counted by its own list, whatever the photos' times and
    whether or not their report.photo_added has reached dispatch yet — the two services' clocks
    need not agree. An older 办结 without the list (before the list existed, or a client that does
    not send it, or the no-script page's two steps) is counted by time, as before: the lead's and
    staff's photos added (intake's clock) after the previous 办结 or 重新办理 up to this 办结
    (dispatch's clock), leaving out photos some 办结 names."""
    timeline = case.get("timeline") or ()
    named = {a for e in timeline if e.get("type") == "resolved" for a in e.get("photos") or ()}
    added = sorted(p["at"] for p in case.get("photos") or ()
                   if p.get("by") in HANDLERS_KINDS and p.get("at") and p.get("url") not in named)
    counts, since = {}, ""
    for index, entry in enumerate(timeline):
        if entry.get("type") == "resolved":
            if entry.get("photos") is not None:
                counts[index] = len(entry["photos"])
            else:
                counts[index] = sum(1 for at in added if since < at <= entry["at"])
        if entry.get("type") in ("resolved", "reopened"):
            since = entry["at"]
    return counts


def handlers(cases: Aggregates, clock: Clock) -> dict:
    return {"report.photo_added": functools.partial(on_photo_added, cases, clock),
            "report.supplemented": functools.partial(on_supplemented, cases, clock)}
