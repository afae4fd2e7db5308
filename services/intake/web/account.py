"""The browser's side of a resident's sign-in: the session cookie, the short-lived cookie that
carries a sign-in in progress (which challenge, for which township), and their CSRF values.

Both cookies are HttpOnly, SameSite=Lax, path /resident/, Secure on https. Neither holds a phone
number: the session cookie holds a signed session id, the sign-in cookie a signed nonce, the
challenge id and the phone masked (138****0001) for the code page. A form posted before sign-in
carries a value derived from the nonce (another site cannot read the cookie to compute it); after,
one derived from the session id.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import g, request
from itsdangerous import BadSignature, URLSafeSerializer

from shared.domain import phones

SESSION_COOKIE = "sz_resident"
PENDING_COOKIE = "sz_resident_signin"
PATH = "/resident/"
PENDING_SECONDS = 10 * 60
CSRF_FIELD = "resident_csrf"
NEXT = ("mine", "report")   # where a sign-in may lead: nothing else (no open redirect)


def _secure() -> bool:
    return request.is_secure or request.headers.get("X-Forwarded-Proto") == "https"


def _set(resp, name: str, value: str, max_age: int) -> None:
    resp.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="Lax", secure=_secure())


def _drop(resp, name: str) -> None:
    resp.delete_cookie(name, path=PATH, httponly=True, samesite="Lax", secure=_secure())


class Access:
    """Sign-in, sessions and the reports a session may open, for the pages."""

    def __init__(self, signin, sessions, service, secret: str):
        self.signin, self.sessions, self.service = signin, sessions, service
        self._pending = URLSafeSerializer(secret, salt="sanzhang.resident-signin.v1")
        self._key = hashlib.sha256(b"sanzhang/resident-signin-csrf/v1|" + secret.encode()).digest()

    # -- the session ----------------------------------------------------------------------------
    def session(self, township: str | None = None) -> dict | None:
        """This request's live resident session (for ``township`` when given), or None."""
        if "resident_session" not in g:
            g.resident_session = self.sessions.resolve(request.cookies.get(SESSION_COOKIE))
        doc = g.resident_session
        return doc if doc and (township is None or doc["township"] == township) else None

    def masked(self, session: dict) -> str:
        return phones.mask(self.signin.phone_of(session)) or ""

    def csrf(self, session: dict) -> str:
        return self.sessions.csrf(session["_id"])

    def csrf_ok(self, session: dict) -> bool:
        return self.sessions.csrf_ok(session["_id"], request.form.get(CSRF_FIELD))

    def start_session(self, resp, token: str) -> None:
        _set(resp, SESSION_COOKIE, token, int(self.sessions.ttl.total_seconds()))
        _drop(resp, PENDING_COOKIE)

    @staticmethod
    def end_session(resp) -> None:
        _drop(resp, SESSION_COOKIE)

    def own_report(self, township: str, tracking_no: str) -> dict | None:
        """A report of this township made from the signed-in phone (no last four digits asked)."""
        session = self.session(township)
        if session is None:
            return None
        report = self.service.in_township(township, tracking_no)
        return report if report and report.get("phone_key") == session["phone_key"] else None

    # -- a sign-in in progress --------------------------------------------------------------------
    def pending(self, township: str) -> dict | None:
        raw = request.cookies.get(PENDING_COOKIE)
        try:
            doc = self._pending.loads(raw) if raw else None
        except BadSignature:
            return None
        return doc if isinstance(doc, dict) and doc.get("t") == township and doc.get("n") else None

    def next_pending(self, township: str, **fields) -> dict:
        """The sign-in cookie's next content: the same nonce while one is held, with ``fields``."""
        return {"t": township, "n": (self.pending(township) or {}).get("n") or secrets.token_hex(16), **fields}

    def store_pending(self, resp, doc: dict) -> None:
        _set(resp, PENDING_COOKIE, self._pending.dumps(doc), PENDING_SECONDS)

    def pending_csrf(self, pending: dict) -> str:
        return hmac.new(self._key, pending["n"].encode(), hashlib.sha256).hexdigest()[:32]

    def pending_csrf_ok(self, pending: dict | None) -> bool:
        given = request.form.get(CSRF_FIELD) or ""
        return bool(pending) and bool(given) and hmac.compare_digest(self.pending_csrf(pending).encode(), given.encode())
