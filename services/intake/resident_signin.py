"""A resident signs in to 群众服务 with a code texted to their phone (issue 14).

Residents are not registered, so any mobile number may sign in — which is why the code's rules are
exactly the leads' (shared/signin_challenges.py: 6 digits, 5 minutes, 5 tries, 1 a minute and 5 an
hour per phone, a cap per client address). The code is never stored: the challenge keeps the
phone's keyed hash, the phone sealed (to hand to the session), and the township it was asked in.
The message goes out as ``signin.code_requested`` (audience ``resident``) to notify, which words it
for a resident and derives the code only when it hands it to a channel.
"""
from __future__ import annotations

from shared.clock import Clock, iso
from shared.domain import phones
from shared.domain.ids import short_hash
from shared.events import make_event
from shared.personal import Sealer
from shared.signin_challenges import WRONG, Challenges, Refused
from shared.storage import Store

from .resident_sessions import ResidentSessions

__all__ = ["ResidentSignIn", "Refused"]


class ResidentSignIn:
    def __init__(self, store: Store, clock: Clock, wake, *, secret: str, previous_secret: str | None,
                 sessions: ResidentSessions, address_limit: int):
        self.clock = clock
        self.secret = secret
        self.sessions = sessions
        self.sealer = Sealer(secret, previous_secret)
        self.rules = Challenges(store, clock, wake, secret=secret, address_limit=address_limit,
                                collection="resident_challenges")

    def request_code(self, township: str, phone: str, address: str) -> dict:
        """A challenge for ``phone`` (a valid mobile number, checked at the edge) in ``township``."""
        clear = phones.mobile(phone)
        now = self.clock.now()

        def message(challenge_id: str, expires) -> list[dict]:
            recipient = f"resident:{short_hash(self.secret, self.rules.key(clear))}"
            return [make_event("signin.code_requested", township, {
                "challenge_id": challenge_id, "recipient_id": recipient, "name": None, "phone": clear,
                "wecom_id": None, "expires_at": iso(expires), "urgent": True, "audience": "resident"},
                at=now, correlation_id=None)]

        return self.rules.open(clear, address, message,
                               extra={"township": township, "phone_sealed": self.sealer.seal(clear)})

    def verify(self, township: str, challenge_id: str, code: str) -> tuple[str, dict]:
        """(cookie token, session) for the right code of a challenge asked in this township."""
        doc = self.rules.repo.get(challenge_id) if challenge_id else None
        if doc is None or doc.get("township") != township:
            raise Refused(WRONG)   # another township's challenge is no challenge here
        doc = self.rules.check(challenge_id, code)
        return self.sessions.open(township, doc["phone_key"], doc["phone_sealed"])

    def phone_of(self, session: dict) -> str:
        """The verified phone (clear, for a report only: never shown whole, never logged)."""
        return self.sealer.open(session["phone_sealed"])

    def key(self, phone: str) -> str:
        return self.rules.key(phone)
