"""Tencent Cloud SMS (API 3.0 SendSms, version 2021-01-11, TC3-HMAC-SHA256)."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

from shared.domain import phones

from .base import (
    Clock, NonceFn, OutboundMessage, PermanentSendError, RetryableSendError, SendResult,
    default_opener, env_float, env_group, env_json_map, http_call, json_body, 
    new_uuid, system_clock,
)

log = logging.getLogger(__name__)

PROVIDER = "tencent_sms"
SERVICE = "sms"
API_VERSION = "2021-01-11"
CONTENT_TYPE = "application/json; charset=utf-8"
ENV = "SANZHANG_TENCENT_SMS_"

_RETRYABLE_PREFIXES = ("LimitExceeded", "RequestLimitExceeded", "InternalError")
_RETRYABLE_EXACT = frozenset({
    "RequestTimeout", "ResourceUnavailable",
    # The signature is recomputed with a fresh timestamp on every attempt, so an
    # expired one (clock drift) is worth another try rather than a lost message.
    "AuthFailure.SignatureExpire",
})
# InternalError.* codes that describe our request, not their outage.
_PERMANENT_EXACT = frozenset({
    "InternalError.SigVerificationFail", "InternalError.SigFieldMissing",
    "InternalError.RestApiInterfaceNotExist",
})


def is_retryable(code: str) -> bool:
    """AuthFailure.*, FailedOperation.* (blacklist, unapproved sign/template),
    InvalidParameterValue.* (bad number) and unknown codes are permanent."""
    if code in _PERMANENT_EXACT:
        return False
    if code in _RETRYABLE_EXACT:
        return True
    return any(code == p or code.startswith(p + ".") for p in _RETRYABLE_PREFIXES)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_signature(secret_key: str, *, service: str, host: str, timestamp: int,
                  payload: bytes, content_type: str = CONTENT_TYPE) -> str:
    """TC3-HMAC-SHA256 over a POST with signed headers content-type;host."""
    canonical_request = "\n".join([
        "POST", "/", "",
        f"content-type:{content_type}\nhost:{host}\n",
        "content-type;host",
        hashlib.sha256(payload).hexdigest(),
    ])
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    string_to_sign = "\n".join([
        "TC3-HMAC-SHA256", str(timestamp), f"{date}/{service}/tc3_request",
        hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
    ])
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(secret_id: str, secret_key: str, *, service: str, host: str,
                  timestamp: int, payload: bytes, content_type: str = CONTENT_TYPE) -> str:
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    signature = tc3_signature(secret_key, service=service, host=host, timestamp=timestamp,
                              payload=payload, content_type=content_type)
    return (f"TC3-HMAC-SHA256 Credential={secret_id}/{date}/{service}/tc3_request, "
            f"SignedHeaders=content-type;host, Signature={signature}")


@dataclass(frozen=True)
class TencentSmsSettings:
    secret_id: str
    secret_key: str = field(repr=False)
    sdk_app_id: str
    sign_name: str
    # our template key -> {"id": TemplateId, "params": [ordered names]}; Tencent templates
    # take positional parameters ({1}, {2}, ...), so the order lives here.
    templates: Mapping[str, Mapping | str] = field(default_factory=dict)
    region: str = "ap-guangzhou"
    endpoint: str = "https://sms.tencentcloudapi.com"
    timeout: float = 5.0


class TencentSmsChannel:
    name = PROVIDER

    def __init__(self, settings: TencentSmsSettings, now: Clock = system_clock,
                 new_nonce: NonceFn = new_uuid, opener: urllib.request.OpenerDirector | None = None):
        # TC3 has no nonce; new_nonce is accepted so all adapters build the same way.
        self.settings = settings
        self._now = now
        self._opener = opener or default_opener()

    @classmethod
    def from_env(cls, environ: Mapping[str, str], now: Clock = system_clock,
                 new_nonce: NonceFn = new_uuid, opener=None) -> "TencentSmsChannel | None":
        got = env_group(environ, ENV, ["SECRET_ID", "SECRET_KEY", "SDK_APP_ID", "SIGN_NAME"])
        if got is None:
            return None
        settings = TencentSmsSettings(
            secret_id=got["SECRET_ID"], secret_key=got["SECRET_KEY"],
            sdk_app_id=got["SDK_APP_ID"], sign_name=got["SIGN_NAME"],
            templates=env_json_map(environ, ENV + "TEMPLATES"),
            region=environ.get(ENV + "REGION", "").strip() or "ap-guangzhou",
            endpoint=environ.get(ENV + "ENDPOINT", "").strip() or "https://sms.tencentcloudapi.com",
            timeout=env_float(environ, ENV + "TIMEOUT", 5.0),
        )
        return cls(settings, now=now, new_nonce=new_nonce, opener=opener)

    def can_reach(self, msg: OutboundMessage) -> bool:
        return phones.mobile(msg.phone) is not None and msg.template in self.settings.templates

    def _template(self, msg: OutboundMessage) -> tuple[str, list[str]]:
        entry = self.settings.templates.get(msg.template)
        if entry is None:
            raise PermanentSendError(PROVIDER, "template_not_mapped", msg.template)
        if isinstance(entry, str):
            return entry, []
        names = list(entry.get("params") or [])
        missing = [n for n in names if n not in msg.params]
        if missing:
            raise PermanentSendError(PROVIDER, "missing_params", ",".join(missing))
        return str(entry["id"]), [str(msg.params[n]) for n in names]

    def build_request(self, msg: OutboundMessage) -> tuple[str, dict[str, str], bytes]:
        phone = phones.mobile(msg.phone)
        if phone is None:
            raise PermanentSendError(PROVIDER, "no_phone", "no valid mainland mobile number")
        template_id, values = self._template(msg)
        payload = json.dumps({
            "PhoneNumberSet": [phones.e164(phone)],  # E.164, derived from the canonical form
            "SmsSdkAppId": self.settings.sdk_app_id,
            "SignName": self.settings.sign_name,
            "TemplateId": template_id,
            "TemplateParamSet": values,
            # Echoed back in the reply and in delivery receipts.
            "SessionContext": msg.message_id,
        }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        url = self.settings.endpoint.rstrip("/") + "/"
        host = urllib.parse.urlsplit(url).netloc
        timestamp = int(self._now().timestamp())
        headers = {
            "Authorization": authorization(self.settings.secret_id, self.settings.secret_key,
                                           service=SERVICE, host=host, timestamp=timestamp,
                                           payload=payload),
            "Content-Type": CONTENT_TYPE,
            # Sent explicitly so the header on the wire is exactly the one signed.
            "Host": host,
            "X-TC-Action": "SendSms",
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": API_VERSION,
            "X-TC-Region": self.settings.region,
        }
        return url, headers, payload

    def send(self, msg: OutboundMessage) -> SendResult:
        url, headers, payload = self.build_request(msg)
        reply = http_call(self._opener, PROVIDER, "POST", url, headers=headers, body=payload,
                          timeout=self.settings.timeout)
        data = json_body(reply, PROVIDER).get("Response")
        if not isinstance(data, dict):
            raise RetryableSendError(PROVIDER, "bad_response", "no Response object")
        if "Error" in data:
            error = data["Error"] or {}
            self._fail(msg, str(error.get("Code", "")), str(error.get("Message", "")))
        statuses = data.get("SendStatusSet") or []
        if not statuses:
            raise RetryableSendError(PROVIDER, "bad_response", "empty SendStatusSet")
        status = statuses[0]
        code = str(status.get("Code", ""))
        if code != "Ok":
            # The request as a whole succeeded but this number was refused
            # (blacklist, bad number, per-number frequency limit).
            self._fail(msg, code, str(status.get("Message", "")))
        log.info("tencent_sms sent message_id=%s phone=%s serial=%s",
                 msg.message_id, phones.mask(msg.phone), status.get("SerialNo"))
        return SendResult(provider_message_id=status.get("SerialNo") or None, status="sent")

    def _fail(self, msg: OutboundMessage, code: str, message: str):
        log.warning("tencent_sms failed message_id=%s phone=%s code=%s",
                    msg.message_id, phones.mask(msg.phone), code)
        error_cls = RetryableSendError if is_retryable(code) else PermanentSendError
        raise error_cls(PROVIDER, code or "unknown", message)
