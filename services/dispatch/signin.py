"""Sign-in with a one-time code sent by SMS to the phone on file.

Rules (shared/domain/signin_codes.py): 6 digits, valid 5 minutes, the 5th wrong try ends the
challenge, at most 1 code a minute and 5 an hour per phone, and SANZHANG_SIGNIN_ADDRESS_LIMIT per
client address an hour. The code is derived from the challenge id with the secret, never stored:
a challenge keeps its phone's keyed hash, expiry and tries. An unknown phone gets a challenge too
and the same answers — only no message is sent — so nobody can learn which phones have accounts.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from shared.aggregates import Aggregates
from shared.clock import Clock, iso, parse_iso
from shared.domain import phones
from shared.domain.ids import short_hash
from shared.domain.signin_codes import CODE_TTL_SECONDS, MAX_TRIES, PER_HOUR, PER_MINUTE, matches, phone_key
from shared.events import make_event
from shared.storage import Index, Store
from shared.auth import Principal

from .accounts import principal_for

WRONG = "验证码不正确或已失效，请核对短信中的6位数字，或重新获取验证码"


class Refused(Exception):
    """A sign-in step refused, with the Chinese message naming what to do and the HTTP status."""

    def __init__(self, message: str, status: int = 401, retry_after: int | None = None):
        super().__init__(message)
        self.message, self.status, self.retry_after = message, status, retry_after


class SignIn:
    def __init__(self, store: Store, clock: Clock, wake, *, secret: str, accounts, directory, sessions,
                 address_limit: int):
        self.clock = clock
        self.secret = secret
        self.accounts, self.directory, self.sessions = accounts, directory, sessions
        self.address_limit = address_limit
        self.challenges = Aggregates(store.collection("challenges", [
            Index.on("phone_key"), Index.on("address_key"), Index.on("created_at"), Index.on("outbox_due")]),
            clock, wake)

    # -- asking for a code ----------------------------------------------------------------------
    def request_code(self, phone: str, address: str) -> dict:
        now = self.clock.now()
        key = phone_key(self.secret, phones.mobile(phone))
        address_key = short_hash(self.secret, address or "-")
        self._check_limits(key, address_key, now)
        who = self._who(key)
        challenge_id = secrets.token_urlsafe(18)
        expires = now + timedelta(seconds=CODE_TTL_SECONDS)
        events = [self._code_event(challenge_id, who, phone, expires, now)] if who else []
        self.challenges.add({"_id": challenge_id, "phone_key": key, "address_key": address_key,
                             "created_at": iso(now), "expires_at": iso(expires), "tries": 0, "used_at": None}, events)
        return {"challenge_id": challenge_id, "expires_in": CODE_TTL_SECONDS, "resend_in": 60,
                "message": "如果该手机号已登记，验证码已发送，5分钟内有效"}

    def _check_limits(self, key: str, address_key: str, now) -> None:
        hour_ago = iso(now - timedelta(hours=1))
        recent = sorted(c["created_at"] for c in self.challenges.collection.find(
            {"phone_key": key, "created_at": {"$gte": hour_ago}}, limit=PER_HOUR * 4))
        if recent:
            since_last = (now - parse_iso(recent[-1])).total_seconds()
            if len([c for c in recent if (now - parse_iso(c)).total_seconds() < 60]) >= PER_MINUTE:
                wait = max(1, int(60 - since_last))
                raise Refused(f"获取验证码过于频繁，请 {wait} 秒后再试", 429, wait)
        if len(recent) >= PER_HOUR:
            wait = max(1, int(3600 - (now - parse_iso(recent[-PER_HOUR])).total_seconds()))
            raise Refused(f"该手机号一小时内获取验证码已达 {PER_HOUR} 次，请 {wait // 60 + 1} 分钟后再试", 429, wait)
        if self.challenges.collection.count({"address_key": address_key, "created_at": {"$gte": hour_ago}}) \
                >= self.address_limit:
            raise Refused("本网络获取验证码次数过多，请一小时后再试", 429, 3600)

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
        now = self.clock.now()
        doc = self.challenges.get(challenge_id)
        if doc is None:
            raise Refused(WRONG)
        if doc.get("used_at"):
            raise Refused("该验证码已使用过，请重新获取验证码")
        if parse_iso(doc["expires_at"]) <= now:
            raise Refused("验证码已过期（5分钟内有效），请重新获取")
        if doc["tries"] >= MAX_TRIES:
            raise Refused(f"验证码输错已达 {MAX_TRIES} 次，已作废，请重新获取")
        right = matches(self.secret, challenge_id, code)
        outcome = {}

        def attempt(current: dict):
            # Counted with compare-and-set: parallel guesses each use up a try, and a right code
            # is taken once even when it is sent twice at the same moment.
            if current.get("used_at") or current["tries"] >= MAX_TRIES:
                outcome["lost"] = True
                return None
            current["tries"] += 1
            if right:
                current["used_at"] = iso(now)
            outcome["tries"] = current["tries"]
            return None

        self.challenges.mutate(challenge_id, attempt)
        who = self._who(doc["phone_key"]) if right and not outcome.get("lost") else None
        if who is None:
            left = MAX_TRIES - outcome.get("tries", MAX_TRIES)
            raise Refused(f"验证码不正确，还可再试 {left} 次" if left > 0 else f"验证码输错已达 {MAX_TRIES} 次，已作废，请重新获取")
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
