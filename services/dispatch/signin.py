"""Sign-in with a one-time code sent by SMS to the phone on file.

The code's rules (length, expiry, tries, resend spacing, per-phone and per-address limits) are
shared with intake's resident sign-in: shared/signin_challenges.py. Here: who may sign in (an
account or a lead on the roster) and the session that follows. An unknown phone gets a challenge
too and the same answers — only no message is sent — so nobody can learn which phones have accounts.
"""
from __future__ import annotations

from shared.clock import Clock, iso
from shared.domain import phones
from shared.domain.ids import short_hash
from shared.domain.signin_codes import phone_key
from shared.events import make_event
from shared.signin_challenges import WRONG, Challenges, Refused
from shared.storage import Store
from shared.auth import Principal

from .accounts import principal_for

__all__ = ["SignIn", "Refused", "WRONG"]


class SignIn:
    def __init__(self, store: Store, clock: Clock, wake, *, secret: str, accounts, directory, sessions,
                 address_limit: int):
        self.clock = clock
        self.secret = secret
        self.accounts, self.directory, self.sessions = accounts, directory, sessions
        self.rules = Challenges(store, clock, wake, secret=secret, address_limit=address_limit)
        self.challenges = self.rules.repo

    # -- asking for a code ----------------------------------------------------------------------
    def request_code(self, phone: str, address: str) -> dict:
        who = self._who(self.rules.key(phone))
        now = self.clock.now()
        out = self.rules.open(phone, address, lambda challenge_id, expires: (
            [self._code_event(challenge_id, who, phone, expires, now)] if who else []))
        return {**out, "message": "如果该手机号已登记，验证码已发送，5分钟内有效"}

    def _who(self, key: str) -> tuple[str, dict] | None:
        account = self.accounts.by_phone_key(key)
        if account:
            return "account", account
        lead = self.directory.lead_for(key)
        return ("lead", lead) if lead else None

    def _code_event(self, challenge_id: str, who, phone: str, expires, now) -> dict:
        kind, entry = who
        township = entry.get("township") or (entry.get("city") or "000000") + "000"
        recipient = f"person:{short_hash(self.secret, phone_key(self.secret, phones.mobile(phone)))}"
        return make_event("signin.code_requested", township, {
            "challenge_id": challenge_id, "recipient_id": recipient, "name": entry.get("name"),
            "phone": phones.mobile(phone), "wecom_id": entry.get("wecom_id"), "expires_at": iso(expires),
            "urgent": True}, at=now, correlation_id=None)

    # -- entering it ----------------------------------------------------------------------------
    def verify(self, challenge_id: str, code: str) -> tuple[str, Principal, dict]:
        """(token, principal, session) for a right code; Refused otherwise. A code works once."""
        doc = self.rules.check(challenge_id, code)
        who = self._who(doc["phone_key"])
        if who is None:   # nobody may sign in with this phone (never sent a code, or removed since)
            raise self.rules.wrong(doc["tries"] + 1)
        return self._open(who, doc["phone_key"])

    # -- WeCom web sign-in (wecom_oauth.py names the member) -----------------------------------------
    def verify_wecom(self, township: str, userid: str) -> tuple[str, Principal, dict]:
        account = self.accounts.by_wecom_id(township, userid)
        if account:
            return self._open(("account", account), account["phone_key"])
        lead = self.directory.lead_for("", wecom_id=userid, township=township)
        if lead:
            return self._open(("lead", lead), lead["phone_key"])
        raise Refused("您的企业微信账号未登记在本镇(街道)的账号或花名册中，请用短信验证码登录", 401)

    def _open(self, who, key: str) -> tuple[str, Principal, dict]:
        kind, entry = who
        if kind == "account":
            principal = principal_for(entry)
            account_id = entry["_id"]
            township = entry.get("township") or (entry.get("city") or "000000") + "000"
        else:
            township = entry["township"]
            principal = Principal(role="lead", townships=(township,), unit_id=entry["unit_id"], name=entry.get("name"))
            account_id = "lead-" + short_hash(township, entry["unit_id"], key)
        token, session = self.sessions.open(principal, account_id=account_id, township=township, key=key)
        return token, principal, session
