"""The one interface every outbound channel implements, plus the plumbing they share.

Channels never decide *whether* to retry; they classify: a RetryableSendError means
"the same message may succeed later", a PermanentSendError means "retrying is pointless,
fall back to another channel or give up". The notify worker owns retries and fallbacks.
"""
from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import threading
import urllib.error
import urllib.request
import uuid
from shared.domain import phones
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping, Protocol, runtime_checkable

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
NonceFn = Callable[[], str]


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str          # our delivery id, idempotency key
    recipient_id: str        # who (lead id, resident id, department id)
    phone: str | None        # mainland mobile for SMS
    wecom_user: str | None   # WeCom userid
    openid: str | None       # WeChat official-account openid
    template: str            # our template key, e.g. "case.assigned"
    params: dict[str, str]   # template variables
    text: str                # rendered Chinese text (console and WeCom text use this)
    township: str


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None
    status: str  # "sent" (accepted by provider) or "delivered"


class SendError(Exception):
    def __init__(self, provider: str, code: str, message: str = ""):
        # Provider messages can echo request data (Alibaba echoes the whole string to
        # sign, phone number included), and these errors end up in logs and the
        # delivery log, so they are scrubbed once, here.
        self.provider = provider
        self.code = str(code)
        self.message = scrub(message)
        super().__init__(f"{provider}: {self.code}: {self.message}")


class RetryableSendError(SendError):
    """The same message may succeed later (throttling, 5xx, timeouts, network)."""


class PermanentSendError(SendError):
    """Retrying the same message cannot succeed (bad number, unapproved template, auth)."""


@runtime_checkable
class Channel(Protocol):
    name: str

    def can_reach(self, msg: OutboundMessage) -> bool: ...

    def send(self, msg: OutboundMessage) -> SendResult: ...


def system_clock() -> datetime:
    """The production clock; everything else receives a clock by injection."""
    return datetime.now(timezone.utc)


def new_uuid() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- personal data

_TOKEN_IN_TEXT = re.compile(r"(access_token=)[^&\s\"']+", re.IGNORECASE)
_ALIYUN_STS = re.compile(r"(server string to sign is:).*", re.IGNORECASE | re.DOTALL)


def scrub(text: str) -> str:
    """Mask phone numbers and drop tokens / echoed strings-to-sign from provider text."""
    if not text:
        return ""
    text = _ALIYUN_STS.sub(r"\1 [omitted]", text)
    text = _TOKEN_IN_TEXT.sub(r"\1***", text)
    return phones.mask_text(text)


# ---------------------------------------------------------------- HTTP

_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes


def default_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener()


def http_call(
    opener: urllib.request.OpenerDirector,
    provider: str,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float,
) -> HttpReply:
    """One HTTP exchange. Network trouble becomes RetryableSendError; any HTTP status is
    returned as is, because providers put their error codes in 4xx bodies too.

    A timeout is reported with code "timeout" rather than "network": the provider may
    have accepted the message before we stopped waiting, so a retry can duplicate it.
    """
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return HttpReply(resp.status, resp.read(_MAX_BODY))
    except urllib.error.HTTPError as e:
        try:
            data = e.read(_MAX_BODY)
        except (OSError, http.client.HTTPException):
            data = b""
        finally:
            e.close()
        return HttpReply(e.code, data)
    except urllib.error.URLError as e:
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise RetryableSendError(provider, "timeout", "no answer in time") from None
        raise RetryableSendError(provider, "network", type(e.reason).__name__) from None
    except (socket.timeout, TimeoutError):
        raise RetryableSendError(provider, "timeout", "no answer in time") from None
    except (OSError, http.client.HTTPException) as e:
        raise RetryableSendError(provider, "network", type(e).__name__) from None


def json_body(reply: HttpReply, provider: str) -> dict:
    """Decode a JSON object, classifying unreadable replies by HTTP status."""
    try:
        data = json.loads(reply.body.decode("utf-8"))
        if isinstance(data, dict):
            return data
    except (UnicodeDecodeError, ValueError):
        pass
    if reply.status >= 500 or reply.status == 429:
        raise RetryableSendError(provider, f"http_{reply.status}", "provider unavailable")
    if reply.status >= 400:
        raise PermanentSendError(provider, f"http_{reply.status}", "request rejected")
    # A 200 we cannot read is most likely a proxy or gateway page: try again later.
    raise RetryableSendError(provider, "bad_response", "unreadable reply")


# ---------------------------------------------------------------- access tokens


class AccessTokenCache:
    """One cached access token (WeCom, WeChat). Shared by consumer threads, hence the lock:
    both platforms rate-limit token fetches, and a stampede on expiry would hit that."""

    def __init__(self, fetch: Callable[[], tuple[str, int]], now: Clock, margin_seconds: int = 300):
        self._fetch = fetch
        self._now = now
        self._margin = margin_seconds
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at: datetime | None = None

    def get(self) -> str:
        with self._lock:
            if self._token is None or self._expires_at is None or self._now() >= self._expires_at:
                token, expires_in = self._fetch()
                # Refresh early so a token never expires between get() and the send;
                # a margin larger than the lifetime would mean refetching every call.
                margin = self._margin if expires_in > 2 * self._margin else expires_in // 2
                self._token = token
                self._expires_at = self._now() + timedelta(seconds=expires_in - margin)
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget `token` if it is still the current one (another thread may have refreshed)."""
        with self._lock:
            if self._token == token:
                self._token = None
                self._expires_at = None


def errcode_of(data: Mapping) -> int:
    """WeChat-family error code; 0 when absent (WeChat's token reply has none on success)."""
    try:
        return int(data.get("errcode", 0) or 0)
    except (TypeError, ValueError):
        return -999999  # unreadable code: treated like any unknown code (permanent)


def with_token_refresh(tokens: AccessTokenCache, call: Callable[[str], dict], provider: str,
                       rejected: frozenset[int]) -> dict:
    """Run `call` with the cached token; on a token error, refresh once and retry once.

    A token can be revoked before its stated expiry (secret reset, another process
    fetching a new one), so a rejection is expected now and then. A second rejection
    right after a fresh fetch means something else is wrong; hand it to the retry policy.
    """
    token = tokens.get()
    data = call(token)
    if errcode_of(data) not in rejected:
        return data
    tokens.invalidate(token)
    data = call(tokens.get())
    errcode = errcode_of(data)
    if errcode in rejected:
        raise RetryableSendError(provider, str(errcode), "access token rejected after refresh")
    return data


# ---------------------------------------------------------------- configuration


def env_group(environ: Mapping[str, str], prefix: str, required: list[str]) -> dict[str, str] | None:
    """Read PREFIX_NAME variables. None when none of the required ones is set (channel not
    configured); ValueError when only some are, since a half-configured channel that
    silently disappears is worse than a failed start-up. Names only, never values."""
    present = {n: environ.get(prefix + n, "").strip() for n in required}
    missing = [prefix + n for n, v in present.items() if not v]
    if len(missing) == len(required):
        return None
    if missing:
        raise ValueError("incomplete channel configuration, missing: " + ", ".join(missing))
    return present


def env_json_map(environ: Mapping[str, str], name: str) -> dict:
    raw = environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError(f"{name} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object")
    return value


def env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number") from None
