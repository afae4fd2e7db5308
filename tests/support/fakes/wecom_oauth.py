"""WeCom's web sign-in as the server side sees it (企业微信网页授权): gettoken, then
GET /cgi-bin/auth/getuserinfo?access_token=…&code=… → {"errcode": 0, "userid": …} for a member,
{"errcode": 0, "openid": …} for a non-member, 40029 for a code that is unknown or already used
(a code works once and for 5 minutes). ``authorize(userid)`` plays the member's WeCom client:
the code WeCom would append to the redirect."""
from __future__ import annotations

import itertools
import uuid

from .providers import FakeWeCom


class FakeWeComOAuth(FakeWeCom):
    operations = ("token", "send", "oauth")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.codes: dict[str, dict] = {}
        self._n = itertools.count(1)

    def authorize(self, userid: str | None = None, openid: str | None = None) -> str:
        code = f"CODE{next(self._n)}{uuid.uuid4().hex[:20]}"
        self.codes[code] = {"userid": userid} if userid else {"openid": openid or "oFAKE" + uuid.uuid4().hex[:10]}
        return code

    def oauth_config(self, township: str) -> dict:
        return {township: {"corp_id": self.corp_id, "agent_id": str(self.agent_id), "secret": self.corp_secret}}

    def operation(self, req):
        return "oauth" if req.path == "/cgi-bin/auth/getuserinfo" else super().operation(req)

    def handle(self, req, op, scripted):
        if op != "oauth":
            return super().handle(req, op, scripted)
        if req.method != "GET":
            self.problem("auth/getuserinfo must be GET")
        if set(req.query) != {"access_token", "code"}:
            self.problem(f"auth/getuserinfo takes access_token and code, got {sorted(req.query)}")
        token = req.query.get("access_token")
        if token in self.tokens.expired:
            return self._error(42001, "access_token expired")
        if token not in self.tokens.valid:
            return self._error(40014, "invalid access_token")
        who = self.codes.pop(req.query.get("code", ""), None)
        if who is None:
            return self._error(40029, "invalid code")
        return 200, {"errcode": 0, "errmsg": "ok", **who}
