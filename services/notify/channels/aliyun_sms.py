"""Alibaba Cloud SMS (Dysmsapi SendSms, RPC style, API version 2017-05-25)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import timezone
from typing import Mapping

from shared.domain import phones

from .base import (
    Clock, NonceFn, OutboundMessage, PermanentSendError, RetryableSendError, SendResult,
    default_opener, env_float, env_group, env_json_map, http_call, json_body, 
    new_uuid, system_clock,
)

log = logging.getLogger(__name__)

PROVIDER = "aliyun_sms"
API_VERSION = "2017-05-25"
ENV = "SANZHANG_ALIYUN_SMS_"

RETRYABLE = frozenset({
    "isv.BUSINESS_LIMIT_CONTROL",   # per-number minute/hour/day flow control
    "isv.DAY_LIMIT_CONTROL",
    "Throttling", "Throttling.User", "Throttling.Api",
    "isp.SYSTEM_ERROR", "isp.GATEWAY_ERROR", "ServiceUnavailable", "InternalError",
    # Both come from our side of one attempt (nonce, clock); the next attempt re-signs.
    "SignatureNonceUsed", "InvalidTimeStamp.Expired",
})
# Everything else, including isv.MOBILE_NUMBER_ILLEGAL, isv.SMS_TEMPLATE_ILLEGAL,
# isv.SMS_SIGNATURE_ILLEGAL, isv.TEMPLATE_MISSING_PARAMETERS, InvalidAccessKeyId.NotFound,
# SignatureDoesNotMatch and codes we have never seen, is permanent: resending the same
# request cannot fix it, and an unknown code should surface rather than loop.


def percent_encode(value: str) -> str:
    """Alibaba POP encoding: RFC 3986 unreserved kept, space -> %20, * -> %2A, ~ kept."""
    return urllib.parse.quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )


def sign(params: Mapping[str, str], access_key_secret: str, method: str = "POST") -> str:
    string_to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"
    digest = hmac.new((access_key_secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class AliyunSmsSettings:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    sign_name: str
    # our template key -> TemplateCode, or {"code": TemplateCode, "params": [names]} to send
    # only the variables that template declares.
    templates: Mapping[str, str | Mapping] = field(default_factory=dict)
    endpoint: str = "https://dysmsapi.aliyuncs.com/"
    region_id: str = "cn-hangzhou"
    timeout: float = 5.0


class AliyunSmsChannel:
    name = PROVIDER

    def __init__(self, settings: AliyunSmsSettings, now: Clock = system_clock,
                 new_nonce: NonceFn = new_uuid, opener: urllib.request.OpenerDirector | None = None):
        self.settings = settings
        self._now = now
        self._nonce = new_nonce
        self._opener = opener or default_opener()

    @classmethod
    def from_env(cls, environ: Mapping[str, str], now: Clock = system_clock,
                 new_nonce: NonceFn = new_uuid, opener=None) -> "AliyunSmsChannel | None":
        got = env_group(environ, ENV, ["ACCESS_KEY_ID", "ACCESS_KEY_SECRET", "SIGN_NAME"])
        if got is None:
            return None
        settings = AliyunSmsSettings(
            access_key_id=got["ACCESS_KEY_ID"],
            access_key_secret=got["ACCESS_KEY_SECRET"],
            sign_name=got["SIGN_NAME"],
            templates=env_json_map(environ, ENV + "TEMPLATES"),
            endpoint=environ.get(ENV + "ENDPOINT", "").strip() or "https://dysmsapi.aliyuncs.com/",
            region_id=environ.get(ENV + "REGION", "").strip() or "cn-hangzhou",
            timeout=env_float(environ, ENV + "TIMEOUT", 5.0),
        )
        return cls(settings, now=now, new_nonce=new_nonce, opener=opener)

    def can_reach(self, msg: OutboundMessage) -> bool:
        return phones.mobile(msg.phone) is not None and msg.template in self.settings.templates

    def _template(self, msg: OutboundMessage) -> tuple[str, dict[str, str]]:
        entry = self.settings.templates.get(msg.template)
        if entry is None:
            raise PermanentSendError(PROVIDER, "template_not_mapped", msg.template)
        if isinstance(entry, str):
            return entry, dict(msg.params)
        names = list(entry.get("params") or msg.params)
        missing = [n for n in names if n not in msg.params]
        if missing:
            raise PermanentSendError(PROVIDER, "missing_params", ",".join(missing))
        return str(entry["code"]), {n: str(msg.params[n]) for n in names}

    def signed_params(self, msg: OutboundMessage) -> dict[str, str]:
        phone = phones.mobile(msg.phone)
        if phone is None:
            raise PermanentSendError(PROVIDER, "no_phone", "no valid mainland mobile number")
        code, variables = self._template(msg)
        params = {
            "AccessKeyId": self.settings.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": self.settings.region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": self._nonce(),
            "SignatureVersion": "1.0",
            "Timestamp": self._now().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            "PhoneNumbers": phone,
            "SignName": self.settings.sign_name,
            "TemplateCode": code,
            "TemplateParam": json.dumps(variables, ensure_ascii=False, separators=(",", ":")),
            # Echoed in delivery receipts, so receipts can be matched to our delivery.
            "OutId": msg.message_id,
        }
        params["Signature"] = sign(params, self.settings.access_key_secret, "POST")
        return params

    def send(self, msg: OutboundMessage) -> SendResult:
        params = self.signed_params(msg)
        # POST form rather than GET: keeps the phone number and template values out of
        # URLs, which proxies and access logs record.
        body = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items()).encode()
        reply = http_call(
            self._opener, PROVIDER, "POST", self.settings.endpoint,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            body=body, timeout=self.settings.timeout,
        )
        data = json_body(reply, PROVIDER)
        code = str(data.get("Code", ""))
        if code == "OK":
            log.info("aliyun_sms sent message_id=%s phone=%s biz_id=%s",
                     msg.message_id, phones.mask(msg.phone), data.get("BizId"))
            return SendResult(provider_message_id=data.get("BizId"), status="sent")
        if not code:
            # JSON without a Code is not an Alibaba answer (a gateway in between, say).
            if 400 <= reply.status < 500:
                raise PermanentSendError(PROVIDER, f"http_{reply.status}", "no error code in reply")
            raise RetryableSendError(PROVIDER, f"http_{reply.status}", "no error code in reply")
        error_cls = RetryableSendError if code in RETRYABLE else PermanentSendError
        err = error_cls(PROVIDER, code, str(data.get("Message", "")))
        log.warning("aliyun_sms failed message_id=%s phone=%s code=%s",
                    msg.message_id, phones.mask(msg.phone), code)
        raise err
