"""Sign-in challenges: the one set of code rules for everyone who signs in with a text-message code
(dispatch's leads and staff, intake's residents).

Rules (shared/domain/signin_codes.py): 6 digits, valid 5 minutes, the 5th wrong try ends the
challenge, at most 1 code a minute and 5 an hour per phone, and ``address_limit`` codes per client
address an hour. The code is derived from the challenge id with the secret, never stored: a
challenge keeps its phone's keyed hash, the address's keyed hash, expiry and tries (and whatever
the service adds, e.g. intake's sealed phone). Tries are counted by compare-and-set: parallel
guesses each use one, a right code is taken once.

Each service keeps its own challenges in its own store; the rules live here once.
"""
from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Callable, Iterable

from .aggregates import Aggregates
from .clock import Clock, iso, parse_iso
from .domain import phones
from .domain.ids import short_hash
from .domain.signin_codes import CODE_TTL_SECONDS, MAX_TRIES, PER_HOUR, PER_MINUTE, matches, phone_key
from .storage import Index, Store

WRONG = "验证码不正确或已失效，请核对短信中的6位数字，或重新获取验证码"
RESEND_IN = 60


class Refused(Exception):
    """A sign-in step refused, with the Chinese message naming what to do and the HTTP status."""

    def __init__(self, message: str, status: int = 401, retry_after: int | None = None):
        super().__init__(message)
        self.message, self.status, self.retry_after = message, status, retry_after


class Challenges:
    def __init__(self, store: Store, clock: Clock, wake, *, secret: str, address_limit: int,
                 collection: str = "challenges"):
        self.clock = clock
        self.secret = secret
        self.address_limit = address_limit
        self.repo = Aggregates(store.collection(collection, [
            Index.on("phone_key"), Index.on("address_key"), Index.on("created_at"), Index.on("outbox_due")]),
            clock, wake)

    def key(self, phone: str) -> str:
        return phone_key(self.secret, phones.mobile(phone) or phone)

    # -- asking for a code ----------------------------------------------------------------------
    def open(self, phone: str, address: str, events: Callable[[str, object], Iterable[dict]],
             extra: dict | None = None) -> dict:
        """A new challenge for ``phone`` asked from ``address`` (Refused 429 over a limit).
        ``events(challenge_id, expires)`` gives the events stored with it (the code's message, or
        none for a phone nobody may sign in with)."""
        now = self.clock.now()
        key = self.key(phone)
        address_key = short_hash(self.secret, address or "-")
        self._check_limits(key, address_key, now)
        challenge_id = secrets.token_urlsafe(18)
        expires = now + timedelta(seconds=CODE_TTL_SECONDS)
        self.repo.add({"_id": challenge_id, "phone_key": key, "address_key": address_key, **(extra or {}),
                       "created_at": iso(now), "expires_at": iso(expires), "tries": 0, "used_at": None},
                      list(events(challenge_id, expires)))
        return {"challenge_id": challenge_id, "expires_in": CODE_TTL_SECONDS, "resend_in": RESEND_IN}

    def _check_limits(self, key: str, address_key: str, now) -> None:
        hour_ago = iso(now - timedelta(hours=1))
        recent = sorted(c["created_at"] for c in self.repo.collection.find(
            {"phone_key": key, "created_at": {"$gte": hour_ago}}, limit=PER_HOUR * 4))
        if recent:
            since_last = (now - parse_iso(recent[-1])).total_seconds()
            if len([c for c in recent if (now - parse_iso(c)).total_seconds() < 60]) >= PER_MINUTE:
                wait = max(1, int(60 - since_last))
                raise Refused(f"获取验证码过于频繁，请 {wait} 秒后再试", 429, wait)
        if len(recent) >= PER_HOUR:
            wait = max(1, int(3600 - (now - parse_iso(recent[-PER_HOUR])).total_seconds()))
            raise Refused(f"该手机号一小时内获取验证码已达 {PER_HOUR} 次，请 {wait // 60 + 1} 分钟后再试", 429, wait)
        if self.repo.collection.count({"address_key": address_key, "created_at": {"$gte": hour_ago}}) \
                >= self.address_limit:
            raise Refused("本网络获取验证码次数过多，请一小时后再试", 429, 3600)

    # -- entering it ----------------------------------------------------------------------------
    def check(self, challenge_id: str, code: str) -> dict:
        """The challenge a right code was entered for (taken: it works once); Refused otherwise."""
        now = self.clock.now()
        doc = self.repo.get(challenge_id) if challenge_id else None
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
            # Compare-and-set: parallel guesses each use up a try, and a right code is taken once
            # even when it is sent twice at the same moment.
            if current.get("used_at") or current["tries"] >= MAX_TRIES:
                outcome["lost"] = True
                return None
            current["tries"] += 1
            if right:
                current["used_at"] = iso(now)
            outcome["tries"] = current["tries"]
            return None

        self.repo.mutate(challenge_id, attempt)
        if not right or outcome.get("lost"):
            raise self.wrong(outcome.get("tries", MAX_TRIES))
        return doc

    @staticmethod
    def wrong(tries: int) -> Refused:
        left = MAX_TRIES - tries
        return Refused(f"验证码不正确，还可再试 {left} 次" if left > 0 else f"验证码输错已达 {MAX_TRIES} 次，已作废，请重新获取")
