"""A resident's signed-in session (群众服务's SMS sign-in, resident_signin.py).

Residents are intake's and have no accounts: a session stands for "whoever holds this phone", in one
township. It is a document here (checked on every request, so signing out ends it at once) and a
signed token in an HttpOnly cookie scoped to /resident/. The token carries only the session id;
the phone is kept sealed in the document and found again by its keyed hash (``phone_key``), never
put in the cookie. The token is not a ``sz1.``/``sz2.`` credential: no other service and no API of
intake accepts it, so a resident session opens the resident's own pages and nothing else.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from itsdangerous import BadSignature, URLSafeSerializer

from shared.clock import Clock, iso, parse_iso
from shared.storage import Index, Store

PREFIX = "szres1."
_SALT = "sanzhang.resident-session.v1"


class ResidentSessions:
    def __init__(self, store: Store, clock: Clock, secret: str, ttl_hours: float):
        self.clock = clock
        self.ttl = timedelta(hours=ttl_hours)
        self._serializer = URLSafeSerializer(secret, salt=_SALT)
        self._csrf_key = hashlib.sha256(b"sanzhang/resident-csrf/v1|" + secret.encode()).digest()
        self.sessions = store.collection("resident_sessions", [Index.on("phone_key")])

    def open(self, township: str, phone_key: str, phone_sealed: str) -> tuple[str, dict]:
        """A new session: a new id at every sign-in, so an id planted before it cannot be fixed."""
        now = self.clock.now()
        doc = {"_id": secrets.token_urlsafe(18), "township": township, "phone_key": phone_key,
               "phone_sealed": phone_sealed, "created_at": iso(now), "expires_at": iso(now + self.ttl),
               "revoked_at": None}
        self.sessions.insert(doc)
        return PREFIX + self._serializer.dumps({"s": doc["_id"]}), doc

    def resolve(self, token: str | None) -> dict | None:
        """The live session a cookie's token stands for, or None (forged, unknown, ended, expired)."""
        if not token or not token.startswith(PREFIX):
            return None
        try:
            claims = self._serializer.loads(token[len(PREFIX):])
        except BadSignature:
            return None
        doc = self.sessions.get(claims.get("s")) if isinstance(claims, dict) and claims.get("s") else None
        if doc is None or doc.get("revoked_at") or parse_iso(doc["expires_at"]) <= self.clock.now():
            return None
        return doc

    def csrf(self, session_id: str) -> str:
        """The session's synchronizer token (derived: nothing more is stored)."""
        return hmac.new(self._csrf_key, b"session|" + session_id.encode(), hashlib.sha256).hexdigest()[:32]

    def csrf_ok(self, session_id: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf(session_id).encode(), given.encode())

    # -- ending ---------------------------------------------------------------------------------
    def revoke(self, session_id: str, reason: str) -> bool:
        doc = self.sessions.get(session_id)
        if doc is None or doc.get("revoked_at"):
            return False
        self.sessions.upsert({**doc, "revoked_at": iso(self.clock.now()), "revoked_reason": reason})
        return True

    def revoke_phone(self, phone_key: str, reason: str) -> int:
        """Every live session of one phone (在所有设备上退出, a lost phone)."""
        live = [d for d in self.sessions.find({"phone_key": phone_key}, limit=1000) if not d.get("revoked_at")]
        return sum(1 for d in live if self.revoke(d["_id"], reason))
