"""A service's deny table of revoked sessions, fed by ``access.revoked``.

Every service keeps its own (in its own store, shared by its workers and replicas) and the
authenticator asks it about every session token: one primary-key read per request made with a
person's session, none for machine credentials. Rows end with the sessions' expiry, after which
the token's own expiry refuses it anyway.
"""
from __future__ import annotations

from typing import Callable

from .clock import Clock, iso
from .storage import Index, Store

EVENTS = frozenset({"access.revoked"})


class Revocations:
    def __init__(self, store: Store, clock: Clock):
        self.clock = clock
        self.denied = store.collection("revoked_sessions", [Index.on("expires_at")])

    def handlers(self) -> dict[str, Callable[[dict], None]]:
        return {"access.revoked": self.on_revoked}

    def on_revoked(self, event: dict) -> None:
        p = event["payload"]
        for session_id in p["session_ids"]:
            # An upsert: a redelivered event writes the same row again.
            self.denied.upsert({"_id": session_id, "account_id": p.get("account_id"),
                                "reason": p.get("reason"), "expires_at": p.get("expires_at") or iso(self.clock.now())})

    def allows(self, principal) -> bool:
        return self.denied.get(principal.session_id) is None
