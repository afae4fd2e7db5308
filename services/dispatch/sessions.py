"""People's sessions: opened at sign-in, checked on every request, revoked at once.

A session is a document here (dispatch owns people and leads) and a signed token in the person's
hands (``sz2.``, shared/auth.py). dispatch checks its own documents on every request made with a
session — including, for a lead, that the post still has the same holder, so a red card or a
roster change shuts the door before any event has travelled. Revoking a session also emits
``access.revoked``, which every other service writes into its deny table (shared/revocations.py).
"""
from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import timedelta

from shared.aggregates import Aggregates, Unchanged
from shared.auth import Principal, TokenIssuer
from shared.clock import Clock, iso, parse_iso
from shared.domain import phones
from shared.domain.signin_codes import phone_key
from shared.events import make_event
from shared.storage import Index, Store


class Sessions:
    def __init__(self, store: Store, clock: Clock, wake, issuer: TokenIssuer, secret: str, org, ttl_hours: float):
        self.clock = clock
        self.issuer = issuer
        self.secret = secret
        self.org = org
        self.ttl = timedelta(hours=ttl_hours)
        self.sessions = Aggregates(store.collection("sessions", [Index.on("account_id"), Index.on("township"),
                                                                  Index.on("outbox_due")]), clock, wake)

    def open(self, principal: Principal, *, account_id: str, township: str, key: str) -> tuple[str, dict]:
        """A new session (a new id at every sign-in: a session id chosen before it cannot be fixed)."""
        now = self.clock.now()
        session_id = secrets.token_urlsafe(18)
        expires = now + self.ttl
        doc = self.sessions.add({"_id": session_id, "account_id": account_id, "township": township,
                                 "role": principal.role, "unit_id": principal.unit_id, "phone_key": key,
                                 "created_at": iso(now), "expires_at": iso(expires), "revoked_at": None})
        signed = replace(principal, session_id=session_id, account_id=account_id)
        return self.issuer.issue_session(signed, expires.timestamp()), doc

    # -- checked on every request ---------------------------------------------------------------
    def allows(self, principal: Principal) -> bool:
        doc = self.sessions.get(principal.session_id)
        if doc is None or doc.get("revoked_at") or parse_iso(doc["expires_at"]) <= self.clock.now():
            return False
        return doc["role"] != "lead" or self._still_holds(doc)

    def _still_holds(self, doc: dict) -> bool:
        unit = self.org.unit(doc["unit_id"]) if doc.get("unit_id") else None
        phone = ((unit or {}).get("lead") or {}).get("phone")
        return bool(phone) and phone_key(self.secret, phones.mobile(phone) or phone) == doc["phone_key"]

    # -- revoking -------------------------------------------------------------------------------
    def revoke(self, session_id: str, reason: str) -> bool:
        """Ends one session; False when it was not live."""
        now = self.clock.now()
        ended = []

        def end(doc: dict):
            if doc.get("revoked_at"):
                raise Unchanged()
            ended.append(doc["_id"])
            doc.update(revoked_at=iso(now), revoked_reason=reason)
            return [make_event("access.revoked", doc["township"],
                               {"session_ids": [doc["_id"]], "account_id": doc["account_id"], "reason": reason,
                                "expires_at": doc["expires_at"]}, at=now, correlation_id=None)]

        if self.sessions.get(session_id) is None:
            return False
        self.sessions.mutate(session_id, end)
        return bool(ended)

    def revoke_account(self, account_id: str, reason: str) -> int:
        """Every live session of one account (sign out everywhere, an account removed)."""
        live = [d for d in self.sessions.collection.find({"account_id": account_id}) if not d.get("revoked_at")]
        return sum(1 for d in live if self.revoke(d["_id"], reason))

    def reconcile(self, township: str) -> int:
        """After the org changed (a red card, a roster import): leads' sessions whose post no longer
        has them are ended, and the other services hear it."""
        ended = 0
        for doc in self.sessions.collection.find({"township": township}):
            if doc["role"] == "lead" and not doc.get("revoked_at") and not self._still_holds(doc):
                ended += bool(self.revoke(doc["_id"], "lead_removed"))
        return ended
