"""WeCom (企业微信) application text messages to leads and department staff."""
from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Mapping

from .base import (
    AccessTokenCache, Clock, NonceFn, OutboundMessage, PermanentSendError, RetryableSendError,
    SendResult, default_opener, env_float, env_group, http_call, json_body, new_uuid,
    system_clock, with_token_refresh, errcode_of,
)

log = logging.getLogger(__name__)

PROVIDER = "wecom"
ENV = "SANZHANG_WECOM_"

TOKEN_REJECTED = frozenset({40014, 42001})          # invalid / expired access_token
RETRYABLE = frozenset({-1, 45009, 45033, 45011})    # busy, frequency and concurrency limits
# 81013 (no valid recipient), 60020 (server IP not allowed), 40001/40013/40056 (wrong
# secret, corp or agent), 44004/45002 (empty / too long) and unknown codes: permanent.


def classify(errcode: int, errmsg: str):
    cls = RetryableSendError if errcode in RETRYABLE else PermanentSendError
    return cls(PROVIDER, str(errcode), errmsg)


@dataclass(frozen=True)
class WeComSettings:
    corp_id: str
    corp_secret: str = field(repr=False)
    agent_id: int
    endpoint: str = "https://qyapi.weixin.qq.com"
    timeout: float = 5.0
    token_margin_seconds: int = 300


class WeComChannel:
    name = PROVIDER

    def __init__(self, settings: WeComSettings, now: Clock = system_clock,
                 new_nonce: NonceFn = new_uuid, opener: urllib.request.OpenerDirector | None = None):
        self.settings = settings
        self._opener = opener or default_opener()
        self.tokens = AccessTokenCache(self._fetch_token, now, settings.token_margin_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], now: Clock = system_clock,
                 new_nonce: NonceFn = new_uuid, opener=None) -> "WeComChannel | None":
        got = env_group(environ, ENV, ["CORP_ID", "CORP_SECRET", "AGENT_ID"])
        if got is None:
            return None
        try:
            agent_id = int(got["AGENT_ID"])
        except ValueError:
            raise ValueError(ENV + "AGENT_ID must be an integer") from None
        settings = WeComSettings(
            corp_id=got["CORP_ID"], corp_secret=got["CORP_SECRET"], agent_id=agent_id,
            endpoint=environ.get(ENV + "ENDPOINT", "").strip() or "https://qyapi.weixin.qq.com",
            timeout=env_float(environ, ENV + "TIMEOUT", 5.0),
        )
        return cls(settings, now=now, new_nonce=new_nonce, opener=opener)

    def can_reach(self, msg: OutboundMessage) -> bool:
        return bool(msg.wecom_user)

    def _url(self, path: str, query: Mapping[str, str | int]) -> str:
        return f"{self.settings.endpoint.rstrip('/')}{path}?{urllib.parse.urlencode(query)}"

    def _fetch_token(self) -> tuple[str, int]:
        url = self._url("/cgi-bin/gettoken", {"corpid": self.settings.corp_id,
                                              "corpsecret": self.settings.corp_secret})
        data = json_body(http_call(self._opener, PROVIDER, "GET", url,
                                   timeout=self.settings.timeout), PROVIDER)
        errcode = errcode_of(data)
        if errcode != 0 or not data.get("access_token"):
            log.warning("wecom gettoken failed errcode=%s", errcode)
            raise classify(errcode, str(data.get("errmsg", "")))
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    def send(self, msg: OutboundMessage) -> SendResult:
        if not msg.wecom_user:
            raise PermanentSendError(PROVIDER, "no_wecom_user", "recipient has no WeCom userid")
        body = json.dumps({
            "touser": msg.wecom_user,
            "msgtype": "text",
            "agentid": self.settings.agent_id,
            "text": {"content": msg.text},
            "safe": 0,
        }, ensure_ascii=False).encode("utf-8")
        data = with_token_refresh(self.tokens, lambda token: self._post(token, body), PROVIDER,
                                  TOKEN_REJECTED)
        errcode = errcode_of(data)
        if errcode != 0:
            log.warning("wecom send failed message_id=%s errcode=%s", msg.message_id, errcode)
            raise classify(errcode, str(data.get("errmsg", "")))
        # WeCom still answers 0 when some recipients are unknown or outside the app's
        # visible range, and lists them; for our single recipient that is a failure.
        invalid = str(data.get("invaliduser") or "").split("|")
        if msg.wecom_user in invalid:
            raise PermanentSendError(PROVIDER, "invaliduser", "user not reachable by this app")
        log.info("wecom sent message_id=%s recipient=%s msgid=%s",
                 msg.message_id, msg.recipient_id, data.get("msgid"))
        return SendResult(provider_message_id=data.get("msgid") or None, status="sent")

    def _post(self, token: str, body: bytes) -> dict:
        url = self._url("/cgi-bin/message/send", {"access_token": token})
        reply = http_call(self._opener, PROVIDER, "POST", url, body=body,
                          headers={"Content-Type": "application/json; charset=utf-8"},
                          timeout=self.settings.timeout)
        return json_body(reply, PROVIDER)

