"""notify's settings, read from the environment mapping (ctx.settings.extra) once at start-up.

Every variable is listed, with its meaning, in shared/config.py ENV_VARS. A malformed value
fails the start-up with the variable's name (never its value: some hold phone numbers).
"""
from __future__ import annotations

import re

import json
from dataclasses import dataclass, field
from datetime import time
from typing import Mapping
from zoneinfo import ZoneInfo
from shared.domain.localtime import local_zone

PREFIX = "SANZHANG_NOTIFY_"
KINDS = ("lead", "resident", "staff", "department", "signin")   # signin: people's sign-in codes
SMS_CHANNELS = frozenset({"aliyun_sms", "tencent_sms"})
DEFAULT_ROUTE = ("console",)


# Every variable notify reads, one line each (shared/config.py ENV_VARS lists the ones every
# service reads; these reach the notify deployment alone). Empty means the default.
ENV_VARS = {
    # channels: each provider is enabled when its required variables are set; half a set fails start-up
    "SANZHANG_ALIYUN_SMS_ACCESS_KEY_ID": "Alibaba Cloud SMS AccessKey id (required with the secret and sign name to enable aliyun_sms).",
    "SANZHANG_ALIYUN_SMS_ACCESS_KEY_SECRET": "Alibaba Cloud SMS AccessKey secret (keep in a secret, not a ConfigMap).",
    "SANZHANG_ALIYUN_SMS_SIGN_NAME": "Alibaba Cloud approved SMS signature (签名), e.g. 韶山三长制.",
    "SANZHANG_ALIYUN_SMS_TEMPLATES": "JSON: notify template key (e.g. case.assigned:assignee) -> TemplateCode or {\"code\": …, \"params\": [variables]}.",
    "SANZHANG_ALIYUN_SMS_ENDPOINT": "Dysmsapi endpoint (default https://dysmsapi.aliyuncs.com/).",
    "SANZHANG_ALIYUN_SMS_REGION": "Alibaba Cloud RegionId (default cn-hangzhou).",
    "SANZHANG_ALIYUN_SMS_TIMEOUT": "Seconds to wait for Alibaba Cloud SMS (default 5); a timeout is recorded as unknown, never resent.",
    "SANZHANG_TENCENT_SMS_SECRET_ID": "Tencent Cloud SecretId (required with key, SdkAppId and sign name to enable tencent_sms).",
    "SANZHANG_TENCENT_SMS_SECRET_KEY": "Tencent Cloud SecretKey (keep in a secret).",
    "SANZHANG_TENCENT_SMS_SDK_APP_ID": "Tencent Cloud SMS SdkAppId.",
    "SANZHANG_TENCENT_SMS_SIGN_NAME": "Tencent Cloud approved SMS signature.",
    "SANZHANG_TENCENT_SMS_TEMPLATES": "JSON: notify template key -> {\"id\": TemplateId, \"params\": [ordered variables]}.",
    "SANZHANG_TENCENT_SMS_REGION": "Tencent Cloud region (default ap-guangzhou).",
    "SANZHANG_TENCENT_SMS_ENDPOINT": "Tencent Cloud SMS endpoint (default https://sms.tencentcloudapi.com).",
    "SANZHANG_TENCENT_SMS_TIMEOUT": "Seconds to wait for Tencent Cloud SMS (default 5).",
    "SANZHANG_WECOM_CORP_ID": "WeCom (企业微信) corp id (required with secret and agent id to enable wecom).",
    "SANZHANG_WECOM_CORP_SECRET": "WeCom application secret (keep in a secret).",
    "SANZHANG_WECOM_AGENT_ID": "WeCom application AgentId (integer).",
    "SANZHANG_WECOM_ENDPOINT": "WeCom API base (default https://qyapi.weixin.qq.com).",
    "SANZHANG_WECOM_TIMEOUT": "Seconds to wait for WeCom (default 5).",
    "SANZHANG_WECHAT_MP_APP_ID": "WeChat official account AppID (required with the secret to enable wechat_mp).",
    "SANZHANG_WECHAT_MP_APP_SECRET": "WeChat official account AppSecret (keep in a secret).",
    "SANZHANG_WECHAT_MP_TEMPLATES": "JSON: notify template key -> {\"template_id\": …, \"data\": {\"thing1\": variable, …}, \"page\": optional}.",
    "SANZHANG_WECHAT_MP_PAGE": "Default click-through URL of subscribe messages; {variable} placeholders are filled in.",
    "SANZHANG_WECHAT_MP_ENDPOINT": "WeChat API base (default https://api.weixin.qq.com).",
    "SANZHANG_WECHAT_MP_TIMEOUT": "Seconds to wait for WeChat (default 5).",
    # who, when, how often
    "SANZHANG_NOTIFY_ROUTES": "JSON: {\"default\"|township: {lead|resident|staff|department: [channels in order of preference]}}; unset: console for everyone. dispatch reads it too, to list the posts nobody can be reached at.",
    "SANZHANG_NOTIFY_QUIET_HOURS": "Local quiet hours, e.g. 22:00-07:00 (the default); off disables.",
    "SANZHANG_NOTIFY_QUIET_KINDS": "Recipient kinds whose non-urgent messages wait out quiet hours (default resident,lead).",
    "SANZHANG_NOTIFY_EXEMPT_CHANNELS": "Channels that reach no one's handset, exempt from quiet hours and the rate limit (default console).",
    "SANZHANG_NOTIFY_URGENT_CATEGORIES": "Report categories that are always urgent (sent at once, not rate-limited); default hazard.",
    "SANZHANG_NOTIFY_RATE_LIMIT": "Messages per recipient per window, N/seconds (default 5/600); the excess is merged into one digest; off disables.",
    "SANZHANG_NOTIFY_SMS_BUDGET": "SMS segments per township per hour: an integer (default 300) or JSON {\"default\": n, township: n}; 0 = unlimited.",
    "SANZHANG_NOTIFY_MAX_ATTEMPTS": "Sends per channel before a retryable provider error counts as failure and the next channel is tried (default 4).",
    "SANZHANG_NOTIFY_RETRY_BASE": "Seconds before the first retry; doubles each time, capped at an hour (default 30).",
    "SANZHANG_NOTIFY_SEND_LEASE": "Seconds after which a claimed but unfinished send is called interrupted (unknown) (default 60; keep it well above the channel timeouts).",
    "SANZHANG_NOTIFY_RECEIPT_SECRET": "Shared secret (16+ chars) in the receipt callback URL: /api/v1/receipts/<aliyun|tencent>/<secret> or ?key=; unset: receipts refused.",
    "SANZHANG_NOTIFY_SIGNATURE": "Signature prefixed as 【…】 to every text and counted in its length (default: the SMS sign name, else 三长制).",
    "SANZHANG_NOTIFY_TOWNSHIP_STAFF": "JSON: township -> [{name, phone, wecom_id, openid}] told of breaches and supervising vacant posts (default: the township unit's contact).",
    "SANZHANG_NOTIFY_DEPARTMENTS": "JSON: department id -> {name, phone, wecom_id}: how to reach city departments (events may carry contacts too).",
    "SANZHANG_NOTIFY_LINK_BASE": "Where short links to a case point, e.g. https://qx.cn (keep it short: it counts in the 70-character SMS). Messages to people who must act carry <base>/l/<code>; unset: the tracking number instead (docs/sign-in.md).",
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Routes:
    """Which channels, in order of preference, serve a recipient kind in a township."""
    table: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    def for_(self, township: str, kind: str) -> tuple[str, ...]:
        own = self.table.get(township) or {}
        if kind in own:
            return own[kind]
        return (self.table.get("default") or {}).get(kind, DEFAULT_ROUTE)

    def channel_names(self) -> set[str]:
        return {name for kinds in self.table.values() for route in kinds.values() for name in route}


@dataclass(frozen=True)
class QuietHours:
    start: time | None = time(22, 0)
    end: time | None = time(7, 0)

    @property
    def enabled(self) -> bool:
        return self.start is not None and self.end is not None and self.start != self.end


@dataclass(frozen=True)
class NotifySettings:
    routes: Routes = field(default_factory=Routes)
    # Quiet hours and the times in message texts: the process's one local zone (SANZHANG_TIMEZONE).
    timezone: ZoneInfo = field(default_factory=local_zone)
    quiet: QuietHours = field(default_factory=QuietHours)
    quiet_kinds: frozenset[str] = frozenset({"resident", "lead"})
    # Channels that reach nobody's handset (the console sink): quiet hours and the rate limit
    # exist to spare people, so they do not apply there.
    exempt_channels: frozenset[str] = frozenset({"console"})
    urgent_categories: frozenset[str] = frozenset({"hazard"})
    rate_limit: int = 5            # messages per recipient per window; 0 = no limit
    rate_window: int = 600         # seconds
    sms_budget: Mapping[str, int] = field(default_factory=lambda: {"default": 300})  # segments/township/hour; 0 = none
    max_attempts: int = 4
    retry_base: float = 30.0       # seconds; doubles per attempt
    retry_cap: float = 3600.0
    send_lease: float = 60.0       # seconds a "sending" claim is trusted before it is called interrupted
    receipt_secret: str | None = field(default=None, repr=False)
    signature: str = "三长制"
    township_staff: Mapping[str, list[dict]] = field(default_factory=dict, repr=False)
    departments: Mapping[str, dict] = field(default_factory=dict, repr=False)
    link_base: str | None = None   # short links to a case (signin_codes.py's sibling, links.py)

    def budget_for(self, township: str) -> int:
        return int(self.sms_budget.get(township, self.sms_budget.get("default", 0)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "NotifySettings":
        get = lambda name: (environ.get(PREFIX + name) or "").strip()  # noqa: E731
        kw: dict = {}
        if get("ROUTES"):
            kw["routes"] = parse_routes(_json(get("ROUTES"), "ROUTES"))
        # Empty means the default (deployments list every variable, most of them empty);
        # "none" / "off" is how a list or the quiet hours are switched off.
        if get("QUIET_HOURS"):
            kw["quiet"] = parse_quiet_hours(get("QUIET_HOURS"))
        if get("QUIET_KINDS"):
            kw["quiet_kinds"] = _kinds(get("QUIET_KINDS"), "QUIET_KINDS")
        if get("EXEMPT_CHANNELS"):
            kw["exempt_channels"] = frozenset(_csv(get("EXEMPT_CHANNELS")))
        if get("URGENT_CATEGORIES"):
            kw["urgent_categories"] = frozenset(_csv(get("URGENT_CATEGORIES")))
        if get("RATE_LIMIT"):
            kw["rate_limit"], kw["rate_window"] = parse_rate(get("RATE_LIMIT"))
        if get("SMS_BUDGET"):
            kw["sms_budget"] = parse_budget(get("SMS_BUDGET"))
        if get("MAX_ATTEMPTS"):
            kw["max_attempts"] = _int(get("MAX_ATTEMPTS"), "MAX_ATTEMPTS", minimum=1)
        if get("RETRY_BASE"):
            kw["retry_base"] = _float(get("RETRY_BASE"), "RETRY_BASE")
        if get("SEND_LEASE"):
            kw["send_lease"] = _float(get("SEND_LEASE"), "SEND_LEASE")
        if get("RECEIPT_SECRET"):
            if len(get("RECEIPT_SECRET")) < 16:
                raise ConfigError(PREFIX + "RECEIPT_SECRET must be at least 16 characters")
            kw["receipt_secret"] = get("RECEIPT_SECRET")
        signature = (get("SIGNATURE") or (environ.get("SANZHANG_ALIYUN_SMS_SIGN_NAME") or "").strip()
                     or (environ.get("SANZHANG_TENCENT_SMS_SIGN_NAME") or "").strip())
        if signature:
            kw["signature"] = signature
        if get("TOWNSHIP_STAFF"):
            kw["township_staff"] = parse_staff(_json(get("TOWNSHIP_STAFF"), "TOWNSHIP_STAFF"))
        if get("DEPARTMENTS"):
            kw["departments"] = parse_departments(_json(get("DEPARTMENTS"), "DEPARTMENTS"))
        if get("LINK_BASE"):
            if not re.match(r"^https?://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._/-]*)?$", get("LINK_BASE")):
                raise ConfigError(PREFIX + "LINK_BASE must look like https://qx.cn (a URL without query)")
            kw["link_base"] = get("LINK_BASE").rstrip("/")
        return cls(**kw)


# -- parsers ------------------------------------------------------------------------------------

def _json(raw: str, name: str):
    try:
        return json.loads(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} is not valid JSON") from None


def _csv(raw: str) -> list[str]:
    if raw.strip().lower() in ("none", "off", "-"):
        return []
    return [part.strip() for part in raw.split(",") if part.strip()]


def _kinds(raw: str, name: str) -> frozenset[str]:
    kinds = frozenset(_csv(raw))
    unknown = kinds - set(KINDS)
    if unknown:
        raise ConfigError(f"{PREFIX}{name}: unknown recipient kinds {sorted(unknown)} (known: {', '.join(KINDS)})")
    return kinds


def _int(raw: str, name: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be an integer") from None
    if value < minimum:
        raise ConfigError(f"{PREFIX}{name} must be at least {minimum}")
    return value


def _float(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a number") from None
    if value < 0:
        raise ConfigError(f"{PREFIX}{name} must not be negative")
    return value


def parse_routes(data) -> Routes:
    if not isinstance(data, dict):
        raise ConfigError(PREFIX + "ROUTES must be a JSON object of township (or \"default\") -> kind -> [channels]")
    table: dict[str, dict[str, tuple[str, ...]]] = {}
    for township, kinds in data.items():
        if township != "default" and not (isinstance(township, str) and township.isdigit() and len(township) == 9):
            raise ConfigError(f"{PREFIX}ROUTES: key {township!r} is neither \"default\" nor a 9-digit township code")
        if not isinstance(kinds, dict):
            raise ConfigError(f"{PREFIX}ROUTES[{township}] must be an object of kind -> [channels]")
        table[township] = {}
        for kind, route in kinds.items():
            if kind not in KINDS:
                raise ConfigError(f"{PREFIX}ROUTES[{township}]: unknown recipient kind {kind!r} (known: {', '.join(KINDS)})")
            if not (isinstance(route, list) and route and all(isinstance(c, str) and c for c in route)):
                raise ConfigError(f"{PREFIX}ROUTES[{township}][{kind}] must be a non-empty list of channel names")
            if len(set(route)) != len(route):
                raise ConfigError(f"{PREFIX}ROUTES[{township}][{kind}] names a channel twice")
            table[township][kind] = tuple(route)
    return Routes(table)


def parse_quiet_hours(raw: str) -> QuietHours:
    if raw.lower() in ("", "off", "none", "-"):
        return QuietHours(None, None)
    try:
        start_text, end_text = raw.split("-")
        start = time.fromisoformat(start_text.strip())
        end = time.fromisoformat(end_text.strip())
    except ValueError:
        raise ConfigError(PREFIX + "QUIET_HOURS must look like 22:00-07:00 (or off)") from None
    return QuietHours(start, end)


def parse_rate(raw: str) -> tuple[int, int]:
    if raw.lower() in ("off", "none", "0"):
        return 0, 600
    count, _, window = raw.partition("/")
    return _int(count, "RATE_LIMIT"), (_int(window, "RATE_LIMIT", minimum=1) if window else 600)


def parse_budget(raw: str) -> dict[str, int]:
    if raw.lstrip("-").isdigit():
        return {"default": _int(raw, "SMS_BUDGET")}
    data = _json(raw, "SMS_BUDGET")
    if not isinstance(data, dict) or not all(isinstance(v, int) and v >= 0 for v in data.values()):
        raise ConfigError(PREFIX + "SMS_BUDGET must be an integer or an object of township -> integer")
    return {"default": 0, **data} if "default" not in data else dict(data)


_CONTACT_KEYS = {"name", "phone", "wecom_id", "openid"}


def _contact(item, where: str) -> dict:
    if not isinstance(item, dict) or set(item) - _CONTACT_KEYS or not any(item.get(k) for k in _CONTACT_KEYS):
        raise ConfigError(f"{where} must be an object with some of {sorted(_CONTACT_KEYS)}")
    return {k: str(v) for k, v in item.items() if v}


def parse_staff(data) -> dict[str, list[dict]]:
    if not isinstance(data, dict):
        raise ConfigError(PREFIX + "TOWNSHIP_STAFF must be an object of township -> [contacts]")
    out = {}
    for township, people in data.items():
        people = people if isinstance(people, list) else [people]
        out[township] = [_contact(p, f"{PREFIX}TOWNSHIP_STAFF[{township}]") for p in people]
    return out


def parse_departments(data) -> dict[str, dict]:
    if not isinstance(data, dict):
        raise ConfigError(PREFIX + "DEPARTMENTS must be an object of department id -> contact")
    return {dept: _contact(c, f"{PREFIX}DEPARTMENTS[{dept}]") for dept, c in data.items()}
