"""WeChat Official Account (公众号) subscribe notifications (订阅通知, bizsend) to residents."""
from __future__ import annotations

import json
import logging
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Mapping

from .base import (
    AccessTokenCache, Clock, NonceFn, OutboundMessage, PermanentSendError, RetryableSendError,
    SendResult, default_opener, env_float, env_group, env_json_map, errcode_of, http_call,
    json_body, new_uuid, system_clock, with_token_refresh,
)

log = logging.getLogger(__name__)

PROVIDER = "wechat_mp"
ENV = "SANZHANG_WECHAT_MP_"

TOKEN_REJECTED = frozenset({40001, 40014, 42001})
RETRYABLE = frozenset({-1, 45009, 45011})
# 43101 (user refused / subscription used up), 40003 (bad openid), 40037 (bad template),
# 47003 (data does not fit the template), 48001 (not authorised), 40013/40125/40164
# (wrong appid, wrong secret, IP not whitelisted) and unknown codes: permanent.

# Free-text data kinds and their length limits. Other kinds (number, date, time, amount,
# character_string, phone_number, ...) are data whose truncation would be a lie, so they
# are sent as given and WeChat's own 47003 reports a misfit.
TEXT_LIMITS = {"thing": 20, "name": 10, "phrase": 5}
_KIND = re.compile(r"^([a-z_]+?)\d*$")


def fit_value(key: str, value: str) -> str:
    """Make a value acceptable for a data key such as "thing1"."""
    match = _KIND.match(key)
    limit = TEXT_LIMITS.get(match.group(1) if match else "")
    if limit is None:
        return value
    # thing values may not contain line breaks or control characters, nor be empty.
    value = " ".join(value.split()) or "-"
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value


def classify(errcode: int, errmsg: str):
    cls = RetryableSendError if errcode in RETRYABLE else PermanentSendError
    return cls(PROVIDER, str(errcode), errmsg)


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill_page(page: str, params: Mapping[str, str]) -> str:
    """Replace {name} with the URL-quoted param; unknown placeholders stay as written."""
    return _PLACEHOLDER.sub(
        lambda m: urllib.parse.quote(str(params[m.group(1)]), safe="")
        if m.group(1) in params else m.group(0),
        page,
    )


@dataclass(frozen=True)
class WeChatMpSettings:
    app_id: str
    app_secret: str = field(repr=False)
    # our template key -> {"template_id": ..., "data": {"thing1": "param name", ...},
    #                      "page": optional URL overriding the default}
    templates: Mapping[str, Mapping] = field(default_factory=dict)
    page: str = ""     # default click-through URL; "{param}" placeholders are filled in
    endpoint: str = "https://api.weixin.qq.com"
    timeout: float = 5.0
    token_margin_seconds: int = 300


class WeChatMpChannel:
    name = PROVIDER

    def __init__(self, settings: WeChatMpSettings, now: Clock = system_clock,
                 new_nonce: NonceFn = new_uuid, opener: urllib.request.OpenerDirector | None = None):
        self.settings = settings
        self._opener = opener or default_opener()
        self.tokens = AccessTokenCache(self._fetch_token, now, settings.token_margin_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], now: Clock = system_clock,
                 new_nonce: NonceFn = new_uuid, opener=None) -> "WeChatMpChannel | None":
        got = env_group(environ, ENV, ["APP_ID", "APP_SECRET"])
        if got is None:
            return None
        settings = WeChatMpSettings(
            app_id=got["APP_ID"], app_secret=got["APP_SECRET"],
            templates=env_json_map(environ, ENV + "TEMPLATES"),
            page=environ.get(ENV + "PAGE", "").strip(),
            endpoint=environ.get(ENV + "ENDPOINT", "").strip() or "https://api.weixin.qq.com",
            timeout=env_float(environ, ENV + "TIMEOUT", 5.0),
        )
        return cls(settings, now=now, new_nonce=new_nonce, opener=opener)

    def can_reach(self, msg: OutboundMessage) -> bool:
        return bool(msg.openid) and msg.template in self.settings.templates

    def _url(self, path: str, query: Mapping[str, str]) -> str:
        return f"{self.settings.endpoint.rstrip('/')}{path}?{urllib.parse.urlencode(query)}"

    def _fetch_token(self) -> tuple[str, int]:
        url = self._url("/cgi-bin/token", {"grant_type": "client_credential",
                                           "appid": self.settings.app_id,
                                           "secret": self.settings.app_secret})
        data = json_body(http_call(self._opener, PROVIDER, "GET", url,
                                   timeout=self.settings.timeout), PROVIDER)
        errcode = errcode_of(data)
        if errcode != 0 or not data.get("access_token"):
            log.warning("wechat_mp token failed errcode=%s", errcode)
            raise classify(errcode, str(data.get("errmsg", "")))
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    def build_body(self, msg: OutboundMessage) -> dict:
        if not msg.openid:
            raise PermanentSendError(PROVIDER, "no_openid", "recipient has no openid")
        entry = self.settings.templates.get(msg.template)
        if entry is None:
            raise PermanentSendError(PROVIDER, "template_not_mapped", msg.template)
        fields: Mapping[str, str] = entry.get("data") or {}
        missing = [name for name in fields.values() if name not in msg.params]
        if missing:
            raise PermanentSendError(PROVIDER, "missing_params", ",".join(missing))
        body = {
            "touser": msg.openid,
            "template_id": entry["template_id"],
            "data": {key: {"value": fit_value(key, str(msg.params[name]))}
                     for key, name in fields.items()},
        }
        page = entry.get("page") or self.settings.page
        if page:
            body["page"] = fill_page(page, msg.params)
        return body

    def send(self, msg: OutboundMessage) -> SendResult:
        body = json.dumps(self.build_body(msg), ensure_ascii=False).encode("utf-8")
        data = with_token_refresh(self.tokens, lambda token: self._post(token, body), PROVIDER,
                                  TOKEN_REJECTED)
        errcode = errcode_of(data)
        if errcode != 0:
            log.warning("wechat_mp send failed message_id=%s errcode=%s", msg.message_id, errcode)
            raise classify(errcode, str(data.get("errmsg", "")))
        log.info("wechat_mp sent message_id=%s recipient=%s", msg.message_id, msg.recipient_id)
        msgid = data.get("msgid")
        return SendResult(provider_message_id=str(msgid) if msgid else None, status="sent")

    def _post(self, token: str, body: bytes) -> dict:
        url = self._url("/cgi-bin/message/subscribe/bizsend", {"access_token": token})
        reply = http_call(self._opener, PROVIDER, "POST", url, body=body,
                          headers={"Content-Type": "application/json; charset=utf-8"},
                          timeout=self.settings.timeout)
        return json_body(reply, PROVIDER)
