"""The resident's pages, below the HTTP edge: which townships take reports on the public pages, a
report made from the report page (with its photos), the proof that opens a report's page (tracking
number + the last four digits of the phone, as everywhere), and the actions taken from that page.

A browser that made a report, or proved it is the reporter's, holds the report's resident token
(residents.py) in a cookie for that report only; the pages' forms carry a CSRF value derived from
that token, which another site cannot compute."""
from __future__ import annotations

import hashlib
import hmac

from marshmallow import ValidationError

from . import photos as photo_rules
from .loop_errors import BadInput, NotVisible
from .residents import Caller
from .schemas import ReportIn

# ReportIn's names for the page's fields
_FIELDS = {"reporter_phone": "phone", "reporter_name": "name", "location": "lat"}


def parse_townships(text: str | None) -> dict[str, str]:
    """``430382100=清溪镇,430382101`` → {code: name}; a code without a name is shown as itself."""
    out = {}
    for item in (text or "").split(","):
        code, _, name = item.strip().partition("=")
        if code:
            out[code.strip()] = name.strip() or code.strip()
    return out


def check_photos(files: list[bytes]) -> None:
    """Every photo is JPEG/PNG/WebP by content and at most 5 MB, at most 9 of them — or nothing is stored."""
    if len(files) > photo_rules.MAX_PHOTOS:
        raise BadInput(f"最多上传{photo_rules.MAX_PHOTOS}张照片", field="photos")
    for data in files:
        if len(data) > photo_rules.MAX_BYTES:
            raise BadInput(f"每张照片不能超过{photo_rules.MAX_BYTES // (1024 * 1024)}MB", field="photos")
        if photo_rules.sniff(data) is None:
            raise BadInput("只能上传照片（JPEG、PNG或WebP格式）", field="photos")


class _Page:
    """The page's stand-in principal when a resident gives the proof: it sees one township."""
    role = "page"
    name = "resident-page"

    def __init__(self, township: str):
        self.township = township

    def sees(self, township: str) -> bool:
        return township == self.township


class ResidentDesk:
    def __init__(self, service, loop, tokens, townships: dict[str, str]):
        self.service = service
        self.loop = loop
        self.tokens = tokens
        self.townships = townships

    def submit(self, township: str, form: dict, photos: list[bytes], channel: str = "web") -> tuple[dict, str]:
        """Stores the report (once per page: the form's nonce is the idempotency key), then its
        photos. Returns the report and its resident token. ValidationError names the page's fields."""
        check_photos(photos)
        body = {"township": township, "category": form["category"], "description": form["description"],
                "reporter_phone": form["phone"], "channel": channel, "urgent": form.get("urgent", False)}
        if form.get("address"):   # none for "为我家反映": dispatch finds the household by the phone
            body["address"] = form["address"]
        if form.get("name"):
            body["reporter_name"] = form["name"]
        if "lat" in form:
            body["location"] = {"lat": form["lat"], "lng": form["lng"]}
        try:
            body = ReportIn().load(body)
        except ValidationError as exc:
            raise ValidationError({_FIELDS.get(k, k): v for k, v in exc.messages.items()}) from None
        report = self.service.submit(body, idempotency_key=f"page:{township}:{form['submission']}")
        caller = Caller("resident", township=township, report_id=report["_id"])
        if photos:
            report, _ = self.loop.add_photos(report["_id"], caller, None, photos)
        return report, self.tokens.issue(report)

    def prove(self, township: str, tracking_no: str, phone_last4: str) -> tuple[dict, str]:
        """The report, if the proof is right (wrong proofs count towards the report's lock)."""
        report = self.loop.resident_report(tracking_no, Caller("app", principal=_Page(township)), phone_last4)
        return report, self.tokens.issue(report)

    def by_token(self, township: str, tracking_no: str, token: str | None) -> dict | None:
        claims = self.tokens.verify(token) if token else None
        if not claims or claims[1] != township:
            return None
        report = self.loop.find(claims[0])
        if report is None or report["tracking_no"] != tracking_no.upper():
            return None
        return report

    @staticmethod
    def caller(report: dict) -> Caller:
        return Caller("resident", township=report["township"], report_id=report["_id"])

    def rate(self, report: dict, rating: str, comment: str | None) -> dict:
        return self.loop.rate(report["_id"], self.caller(report), None, rating, comment)

    def not_answered(self, report: dict, note: str | None) -> dict:
        return self.loop.not_answered(report["_id"], self.caller(report), None, note)

    def photo(self, report: dict, photo_id: str):
        if not any(u["id"] == photo_id for u in report.get("uploads", [])):
            raise NotVisible("未找到该照片")
        return self.loop.photo(photo_id, self.caller(report))


def csrf_for(token: str) -> str:
    """The value a report page's forms carry: derived from the cookie's token, unknowable elsewhere."""
    return hashlib.sha256(("csrf:" + token).encode()).hexdigest()[:32]


def csrf_ok(token: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_for(token), given)
