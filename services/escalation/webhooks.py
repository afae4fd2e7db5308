"""Webhooks for departments that prefer push, signed per Standard Webhooks (standardwebhooks.com).

Every request carries ``webhook-id`` (the same on every retry of one message), ``webhook-timestamp``
(Unix seconds of this attempt) and ``webhook-signature`` ``v1,<base64 HMAC-SHA256>`` over
``{id}.{timestamp}.{body}`` keyed with the base64-decoded part of the department's secret
``whsec_<base64>``. The body is ``{"type", "timestamp", "data"}``.

Delivery never blocks the flow: a department.* event consumed by escalation puts a delivery in a
queue (a collection with a due time); a DueSweeper sends it with a short timeout, and a failure is
retried with exponential backoff, up to MAX_ATTEMPTS, then the delivery is marked failed. A
receiver must treat ``webhook-id`` as an idempotency key: a delivery may arrive twice.

``verify`` is the reference verifier for integrators (the guide has the same code to copy).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from shared.clock import Clock, iso
from shared.storage import DuplicateKey, Index, Store, VersionConflict

from .model import delivery_id

log = logging.getLogger(__name__)

TOLERANCE = 300            # seconds either side of now that a receiver accepts
TIMEOUT = 5.0              # seconds per attempt: a slow receiver costs one sweep at most this much
BASE_DELAY = 10            # seconds before the first retry; doubles after every failure
MAX_DELAY = 6 * 3600
MAX_ATTEMPTS = 12          # about 11 hours of retries in all
BATCH = 10                 # per claim: BATCH × TIMEOUT stays below the sweeper's lease
# Which department.* events a department's webhook receives, and whose webhook.
TARGET_FIELD = {
    "department.assigned": "department_id",
    "department.released": "department_id",
    "department.extension_decided": "department_id",
    "department.return_ruled": "department_id",
    "department.sla_warning": "department_id",
    "department.sla_breached": "department_id",
    "department.part_submitted": "lead_department_id",   # the lead hears that a co part is in
}
# Fields that are for notify (people's contacts), not for a department's system.
PRIVATE_FIELDS = ("contact_name", "contact_phone", "wecom_id", "supervisor_name", "supervisor_phone",
                  "supervisor_wecom_id")
DELIVERY_INDEXES = [Index.on("department_id", "created_at"), Index.on("next_due"), Index.on("status")]


class WebhookVerificationError(Exception):
    pass


def _key(secret: str) -> bytes:
    text = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    key = base64.b64decode(text + "=" * (-len(text) % 4))
    if not key:
        raise WebhookVerificationError("empty secret")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    data = body.encode() if isinstance(body, str) else body
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + data, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, headers, body: bytes | str, *, now: float | None = None, tolerance: int = TOLERANCE) -> dict:
    """The reference verifier: the parsed body, or WebhookVerificationError (tampered, old, unsigned)."""
    lower = {k.lower(): v for k, v in dict(headers).items()}
    msg_id, stamp, signatures = lower.get("webhook-id"), lower.get("webhook-timestamp"), lower.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("bad webhook-timestamp") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("message timestamp too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("message timestamp too new")
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1].encode()
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            data = body.decode() if isinstance(body, bytes) else body
            return json.loads(data)
    raise WebhookVerificationError("no matching signature")


def target_of(event: dict) -> str | None:
    field = TARGET_FIELD.get(event["type"])
    return event["payload"].get(field) if field else None


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: 10 s, 20 s, 40 s, … at most 6 h."""
    return timedelta(seconds=min(MAX_DELAY, BASE_DELAY * 2 ** max(0, attempts - 1)))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a hop: the signed request goes only where it was configured to."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class WebhookOutbox:
    def __init__(self, store: Store, clock: Clock, directory, *, timeout: float = TIMEOUT, opener=None):
        self.deliveries = store.collection("webhook_deliveries", DELIVERY_INDEXES)
        self.clock = clock
        self.directory = directory
        self.timeout = timeout
        self.opener = opener or urllib.request.build_opener(_NoRedirect)

    # -- the queue ------------------------------------------------------------------------------
    def enqueue(self, event: dict) -> dict | None:
        """A department.* event consumed: queue it for the department's webhook, if it has one."""
        dept_id = target_of(event)
        dept = self.directory.department(dept_id) if dept_id else None
        hook = (dept or {}).get("webhook") or {}
        if not hook.get("url") or not hook.get("enabled", True):
            return None
        data = {k: v for k, v in event["payload"].items() if k not in PRIVATE_FIELDS}
        data.update(event_id=event["id"], township=event["township"])
        body = json.dumps({"type": event["type"], "timestamp": event["occurred_at"], "data": data},
                          ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        now = iso(self.clock.now())
        doc = {"_id": delivery_id(event["id"], dept_id), "department_id": dept_id, "event_id": event["id"],
               "event_type": event["type"], "case_id": event["payload"].get("case_id"), "body": body,
               "status": "pending", "attempts": 0, "next_due": now, "created_at": now, "delivered_at": None,
               "last_attempt_at": None, "last_status": None, "last_error": None}
        try:
            return self.deliveries.insert(doc)
        except DuplicateKey:
            return None  # the event was redelivered: one message, one delivery

    def of_department(self, dept_id: str, limit: int = 50) -> list[dict]:
        return self.deliveries.find({"department_id": dept_id}, sort=[("created_at", -1)], limit=limit)

    # -- sending --------------------------------------------------------------------------------
    def deliver(self, claimed: dict) -> None:
        """DueSweeper's work: one attempt, then success, a retry later, or failure for good."""
        current = self.deliveries.get(claimed["_id"])
        if current is None:
            return
        if current["status"] != "pending":
            self._write(current, next_due=None)
            return
        dept = self.directory.department(current["department_id"]) or {}
        hook = dept.get("webhook") or {}
        now = self.clock.now()
        if not hook.get("url") or not hook.get("enabled", True):
            self._write(current, status="cancelled", next_due=None, last_error="webhook removed or disabled")
            return
        status, error = self._post(hook["url"], hook["secret"], "msg_" + current["_id"], current["body"], now)
        attempts = current["attempts"] + 1
        fields = {"attempts": attempts, "last_attempt_at": iso(now), "last_status": status, "last_error": error}
        if status is not None and 200 <= status < 300:
            self._write(current, status="delivered", next_due=None, delivered_at=iso(now), **fields)
        elif attempts >= MAX_ATTEMPTS:
            log.warning("webhook delivery failed for good", extra={"department_id": current["department_id"],
                                                                   "delivery_id": current["_id"]})
            self._write(current, status="failed", next_due=None, **fields)
        else:
            self._write(current, next_due=iso(now + backoff(attempts)), **fields)

    def _post(self, url: str, secret: str, msg_id: str, body: str, now: datetime) -> tuple[int | None, str | None]:
        timestamp = math.floor(now.timestamp())
        data = body.encode()
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "sanzhang-webhooks/1",
            "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, data)})
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                response.read(4096)
                return response.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return None, exc.__class__.__name__ + ": " + str(getattr(exc, "reason", exc))[:200]

    def _write(self, doc: dict, **fields) -> None:
        for _ in range(10):
            try:
                self.deliveries.replace({**doc, **fields}, doc["version"])
                return
            except VersionConflict:
                fresh = self.deliveries.get(doc["_id"])
                if fresh is None:
                    return
                doc = fresh
