"""Who the resident is: the person who reported, proven by the report's tracking number plus the last
four digits of their phone, or by the resident token handed out when the report was made.

Residents have no accounts. The client app (the mini-program) calls with its own township-wide
token and adds ``phone_last4``; or it calls with the **resident token** the 201 response returned
("szr1." + a signature over the report id), which stands for that one report only. A resident token
is recognised by the resident endpoints alone (rating, "didn't answer me", follow, photos, reading
one's own report): the shared Authenticator does not know it, so it opens nothing else.

A wrong proof answers exactly like an unknown report (404), so tracking numbers cannot be
confirmed by guessing; five wrong proofs for one report within an hour lock it for the rest of that
hour (still 404), so the 10,000 possible last-four values cannot be tried through.
"""
from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous.encoding import base64_encode
from marshmallow import RAISE, Schema, fields, validate

from shared.clock import iso
from shared.domain.phones import last_four

RESIDENT_PREFIX = "szr1."
_SALT = "sanzhang.resident.v1"
MAX_FAILURES = 5
LOCK_WINDOW = timedelta(hours=1)
APP_ROLES = ("client", "operator")     # may act for a resident who gives the proof


class ResidentTokens:
    def __init__(self, secret: str | None):
        self._serializer = URLSafeSerializer(secret, salt=_SALT) if secret else None
        # Issued on every accepted report (issue 16): the serializer's own signer, key derived once.
        self._signer = self._serializer.make_signer() if self._serializer else None
        self._key = self._signer.derive_key() if self._signer else None
        # The signer's HMAC, computed by OpenSSL in one call: itsdangerous hands hmac a Python
        # wrapper around sha1, which takes hmac's pure-Python road (two hash objects, a key pad
        # per call). The same bytes; another algorithm keeps itsdangerous's own road.
        self._digest = self._signer.digest_method().name if self._signer is not None and \
            type(self._signer.algorithm).__name__ == "HMACAlgorithm" else None

    def issue(self, report: dict) -> str | None:
        """What ``URLSafeSerializer.dumps`` makes of the claims, without its per-call signer and key
        derivation and its zlib trial (a few dozen bytes of ids never compress): verify() reads it as
        it reads the serializer's own tokens."""
        if self._signer is None:
            return None
        claims = json.dumps({"r": report["_id"], "t": report["township"]}, ensure_ascii=False, separators=(",", ":"))
        payload = base64_encode(claims.encode())
        mac = hmac.digest(self._key, payload, self._digest) if self._digest \
            else self._signer.algorithm.get_signature(self._key, payload)
        signature = base64_encode(mac)
        return RESIDENT_PREFIX + (payload + b"." + signature).decode()

    def verify(self, token: str) -> tuple[str, str] | None:
        if self._serializer is None or not token.startswith(RESIDENT_PREFIX):
            return None
        try:
            claims = self._serializer.loads(token[len(RESIDENT_PREFIX):])
        except BadSignature:
            return None
        return claims.get("r"), claims.get("t")


@dataclass(frozen=True)
class Caller:
    """Who is asking on a resident endpoint: a resident (token bound to one report), an app acting
    for a resident (needs the proof), or staff / a lead (for what those may do)."""
    kind: str                       # resident | app | staff | lead
    township: str | None = None     # resident: the token's township
    report_id: str | None = None    # resident: the token's report
    principal: object = None

    @property
    def name(self) -> str:
        if self.kind == "resident":
            return "resident"
        p = self.principal
        return getattr(p, "name", None) or getattr(p, "unit_id", None) or getattr(p, "role", "unknown")

    def sees(self, township: str) -> bool:
        if self.kind == "resident":
            return self.township == township
        return bool(self.principal and self.principal.sees(township))


def proof_ok(report: dict, caller_: Caller, phone_last4: str | None, now: datetime) -> bool:
    """Is the caller the resident who made ``report``? (Locked reports answer no.)"""
    if caller_.kind == "resident":
        return caller_.report_id == report["_id"]
    if caller_.kind != "app" or locked(report, now):
        return False
    expected = last_four(report.get("reporter_phone"))
    given = (phone_last4 or "").strip()
    return bool(expected) and len(given) == 4 and hmac.compare_digest(given.encode(), expected.encode())


def locked(report: dict, now: datetime) -> bool:
    since = iso(now - LOCK_WINDOW)
    return sum(1 for at in report.get("proof_failures") or () if at >= since) >= MAX_FAILURES


def note_failure(report: dict, now: datetime) -> None:
    """Mutation: remembers a wrong proof (the last ten are kept)."""
    report["proof_failures"] = ((report.get("proof_failures") or []) + [iso(now)])[-10:]


# -- per-township settings of the resident's loop -------------------------------------------------
DEFAULTS = {
    "instant_answers": True,        # answer confident matches of the knowledge base at once
    "followup_after_days": 3,       # no rating after this many days: a follow-up call for staff
    "duplicate_radius_m": 200,      # reports this close (same category) are likely duplicates
    "duplicate_window_days": 14,    # … when made this recently and still open
    "rating_link_base": None,       # e.g. https://qingxi.example.cn → rating link https://…/r/<查询码>
}


class SettingsIn(Schema):
    class Meta:
        unknown = RAISE

    instant_answers = fields.Boolean(metadata={"description": "常见问题是否即时答复"})
    followup_after_days = fields.Integer(validate=validate.Range(1, 30),
                                         metadata={"description": "办结后多少天未评价转回访（默认3）"})
    duplicate_radius_m = fields.Integer(validate=validate.Range(10, 2000),
                                        metadata={"description": "疑似重复诉求的距离（米，默认200）"})
    duplicate_window_days = fields.Integer(validate=validate.Range(1, 90),
                                           metadata={"description": "疑似重复诉求的时间窗（天，默认14）"})
    rating_link_base = fields.Url(schemes={"https"}, allow_none=True, require_tld=True,
                                  validate=validate.Length(max=120),
                                  metadata={"format": "uri", "pattern": "^https://",
                                            "description": "评价链接的站点（https），短信里的链接为 <站点>/r/<查询码>"})


class SettingsOut(Schema):
    township = fields.String()
    instant_answers = fields.Boolean()
    followup_after_days = fields.Integer()
    duplicate_radius_m = fields.Integer()
    duplicate_window_days = fields.Integer()
    rating_link_base = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)
    updated_by = fields.String(allow_none=True)


class TownshipSettings:
    def __init__(self, collection, clock):
        self.collection = collection
        self.clock = clock

    def get(self, township: str) -> dict:
        stored = self.collection.get(township) or {}
        return {"township": township, **DEFAULTS,
                **{k: v for k, v in stored.items() if k in DEFAULTS or k in ("updated_at", "updated_by")}}

    def put(self, township: str, changes: dict, actor: str) -> dict:
        current = self.collection.get(township) or {"_id": township, "township": township}
        doc = {**current, **changes, "updated_at": iso(self.clock.now()), "updated_by": actor}
        if doc.get("rating_link_base"):
            doc["rating_link_base"] = doc["rating_link_base"].rstrip("/")
        self.collection.upsert(doc)
        return self.get(township)
