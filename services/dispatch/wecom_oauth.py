"""WeCom web sign-in (企业微信网页授权), for townships that configure it (SANZHANG_WECOM_OAUTH).

1. The browser is sent to ``https://open.weixin.qq.com/connect/oauth2/authorize?appid=<corp_id>
   &redirect_uri=<ours>&response_type=code&scope=snsapi_base&state=<state>&agentid=<agent_id>
   #wechat_redirect``; WeCom sends it back with ``code`` and ``state``.
2. We ask ``GET <endpoint>/cgi-bin/gettoken?corpid=…&corpsecret=…`` for an access token (cached
   until shortly before ``expires_in``) and ``GET <endpoint>/cgi-bin/auth/getuserinfo?access_token=…
   &code=…`` for the member's ``userid`` (a non-member gets ``openid`` instead: refused).
3. The userid is matched to an account's or a lead's WeCom id in that township.
"""
from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

log = logging.getLogger(__name__)

AUTHORIZE = "https://open.weixin.qq.com/connect/oauth2/authorize"
TIMEOUT = 5.0


class OAuthFailed(Exception):
    """WeCom did not name a member: the Chinese message says what to do."""


def parse_config(raw: str | None) -> dict[str, dict]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError("SANZHANG_WECOM_OAUTH must be JSON: {\"<township>\": {\"corp_id\", \"agent_id\", \"secret\"}}") from None
    if not isinstance(data, dict) or not all(
            isinstance(v, dict) and v.get("corp_id") and v.get("agent_id") and v.get("secret") for v in data.values()):
        raise ValueError("SANZHANG_WECOM_OAUTH: each township needs corp_id, agent_id and secret")
    return {k: {"corp_id": str(v["corp_id"]), "agent_id": str(v["agent_id"]), "secret": str(v["secret"])}
            for k, v in data.items()}


class WeComOAuth:
    def __init__(self, config: dict[str, dict], endpoint: str, clock, opener=None):
        self.config = config
        self.endpoint = endpoint.rstrip("/")
        self.clock = clock
        self._opener = opener or urllib.request.build_opener()
        self._tokens: dict[str, tuple[str, object]] = {}
        self._lock = threading.Lock()

    def configured(self, township: str) -> bool:
        return township in self.config

    def authorize_url(self, township: str, redirect_uri: str, state: str) -> str:
        c = self.config[township]
        query = urllib.parse.urlencode({"appid": c["corp_id"], "redirect_uri": redirect_uri, "response_type": "code",
                                        "scope": "snsapi_base", "state": state, "agentid": c["agent_id"]})
        return f"{AUTHORIZE}?{query}#wechat_redirect"

    def userid(self, township: str, code: str) -> str:
        reply = self._get("/cgi-bin/auth/getuserinfo", {"access_token": self._token(township), "code": code})
        if reply.get("errcode") in (40014, 42001):          # the token went stale: once more with a new one
            self._tokens.pop(township, None)
            reply = self._get("/cgi-bin/auth/getuserinfo", {"access_token": self._token(township), "code": code})
        if reply.get("errcode") == 0 and reply.get("userid"):
            return str(reply["userid"])
        if reply.get("errcode") == 0:
            raise OAuthFailed("您不是本镇(街道)企业微信的成员，请用短信验证码登录")
        log.warning("wecom oauth getuserinfo failed errcode=%s", reply.get("errcode"))
        raise OAuthFailed("企业微信授权已失效，请从企业微信重新进入，或用短信验证码登录")

    def _token(self, township: str) -> str:
        now = self.clock.now()
        with self._lock:
            cached = self._tokens.get(township)
            if cached and cached[1] > now:
                return cached[0]
        c = self.config[township]
        reply = self._get("/cgi-bin/gettoken", {"corpid": c["corp_id"], "corpsecret": c["secret"]})
        if reply.get("errcode") != 0 or not reply.get("access_token"):
            log.warning("wecom oauth gettoken failed errcode=%s", reply.get("errcode"))
            raise OAuthFailed("暂时无法连接企业微信，请稍后再试，或用短信验证码登录")
        expires = now + timedelta(seconds=max(60, int(reply.get("expires_in") or 7200) - 300))
        with self._lock:
            self._tokens[township] = (reply["access_token"], expires)
        return reply["access_token"]

    def _get(self, path: str, query: dict) -> dict:
        url = f"{self.endpoint}{path}?{urllib.parse.urlencode(query)}"
        try:
            with self._opener.open(urllib.request.Request(url, method="GET"), timeout=TIMEOUT) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("wecom oauth %s unreachable: %s", path, exc.__class__.__name__)
            raise OAuthFailed("暂时无法连接企业微信，请稍后再试，或用短信验证码登录") from None
