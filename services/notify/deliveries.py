"""Opening a notice: one delivery per (event, recipient, channel), claimed by a unique slot so a
redelivered event inserts nothing; the compare-and-set writes every step relies on; the sweeper's
work on deliveries that are due."""
from __future__ import annotations

import logging
from datetime import timedelta

from shared.clock import iso
from shared.domain.ids import derived_id
from shared.metrics import NOTIFICATIONS
from shared.domain.phones import mask as mask_phone
from shared.storage import DuplicateKey, Index, VersionConflict

from .channels.base import OutboundMessage
from .config import SMS_CHANNELS
from .recipients import Recipient
from .templates import render, sms_length

log = logging.getLogger(__name__)

DELIVERY_INDEXES = [
    Index.on("township"), Index.on("case_id"), Index.on("status"), Index.on("event_id"),
    Index.on("due_at"), Index.on("provider_message_id"), Index.on("notice_slot", unique=True),
    Index.on("created_at"),
]
MAX_CAS = 50
OUTCOMES = {"sent", "delivered", "failed", "unknown", "merged", "skipped"}


def _count(stored: dict, changes: dict) -> None:
    """Counts an outcome once: when the write that set it succeeded."""
    status = changes.get("status")
    if status in OUTCOMES:
        NOTIFICATIONS.labels(stored.get("channel") or "none", status).inc()


def _forward_note(text: str, forwarded: dict | None, signature: str) -> str:
    """A message that reaches the next person because nobody at its post could be reached says so,
    right after the signature: 【三长制】原收件人（第1邻邻长周桂香）无有效联系方式，转您处理。…"""
    if not forwarded:
        return text
    note = f"原收件人（{forwarded['label']}）无有效联系方式，转您处理。"
    sign = f"【{signature}】" if signature else ""
    return sign + note + text[len(sign):] if sign and text.startswith(sign) else note + text


class Deliveries:
    """Part of NotifyService (services/notify/service.py), which holds the stores, channels and settings.
    Sending (``_process``) is in sending.py; quiet hours and limits in limits.py."""

    def _notify(self, event: dict, recipients: list[Recipient], params: dict) -> None:
        seen = set()
        for r in recipients:
            if r.recipient_id in seen:
                continue  # one person, one message per event, even when two rules name them
            seen.add(r.recipient_id)
            self._open(event, r, {**params, "name": r.name or params.get("name") or ""})

    def _urgent(self, event: dict) -> bool:
        p = event["payload"]
        return bool(p.get("urgent")) or (p.get("category") in self.settings.urgent_categories)

    def _open(self, event: dict, r: Recipient, params: dict) -> dict | None:
        township = event["township"]
        key = f"{event['type']}:{r.role}"
        if r.forwarded_from:
            params = {**params, "forwarded_from": r.forwarded_from["label"]}
        text = render(key, params, signature=self.settings.signature, overrides=self._overrides(township))
        if text is None:
            return None
        text = _forward_note(text, r.forwarded_from, self.settings.signature)
        now = self.clock.now()
        notice_id = derived_id("notice", event["id"], r.recipient_id)
        route = list(self.settings.routes.for_(township, r.kind))
        length, segments = sms_length(text)
        p = event["payload"]
        doc = {
            "notice_id": notice_id, "seq": 0, "notice_slot": f"{notice_id}/0",
            "township": township, "case_id": p.get("case_id"), "report_id": p.get("report_id"),
            "tracking_no": p.get("tracking_no"), "event_id": event["id"], "event_type": event["type"],
            "template_key": key, "recipient_id": r.recipient_id, "recipient_role": r.role,
            "recipient_kind": r.kind, "recipient_name": r.name, "to": r.contact,
            "phone_masked": mask_phone(r.contact.get("phone")),
            "route": route, "params": {k: "" if v is None else str(v) for k, v in params.items()},
            "text": text, "length": length, "segments": segments, "urgent": self._urgent(event),
            "status": "queued", "hold_reason": None, "due_at": None, "attempts": 0,
            "counted": False, "budget_taken": 0, "provider_message_id": None, "error": None,
            "error_detail": None, "created_at": iso(now), "sent_at": None, "delivered_at": None,
            "next_attempt_at": None, "merged": [], "merged_into": None, "fallback_of": None,
            "forwarded_from": r.forwarded_from, "address_missing": not any(r.contact.values()),
        }
        channel = self._first_reachable(doc, route)
        if channel is None:
            self._dead_letter({**doc, "_id": derived_id("delivery", event["id"], r.recipient_id, "none"),
                               "channel": None}, "no_reachable_channel")
            return None
        doc["_id"] = derived_id("delivery", event["id"], r.recipient_id, channel)
        doc["channel"] = channel
        hold = self._quiet_until(now, doc)
        if hold:
            doc.update(hold_reason="quiet_hours", due_at=iso(hold))
        else:
            # If this process dies before the send is claimed, the sweeper picks it up after the lease.
            doc["due_at"] = iso(now + timedelta(seconds=self.settings.send_lease))
            if self._claimed_by_insert(doc):
                doc.update(status="sending", counted=True, attempts=1, last_attempt_at=iso(now))
        try:
            # Claiming the notice's slot before sending is what makes a redelivered event send
            # nothing: the second insert finds the first (by id, or by the unique notice slot).
            stored = self.deliveries.insert(doc)
        except DuplicateKey:
            existing = self.deliveries.get(doc["_id"]) or next(
                iter(self.deliveries.find({"notice_slot": doc["notice_slot"]}, limit=1)), None)
            if existing and existing["status"] == "queued" and not existing.get("hold_reason"):
                self._process(existing)  # the earlier attempt died before sending; the CAS decides who sends
            return existing
        if hold:
            log.info("notify held until %s delivery=%s recipient=%s", iso(hold), stored["_id"], r.recipient_id)
            return stored
        if stored["status"] == "sending":
            return self._send(stored)
        return self._process(stored)

    def _claimed_by_insert(self, doc: dict) -> bool:
        """A console delivery is stored straight as "sending": one write instead of queued →
        claimed → sending (issue 16). The insert of the notice's unique slot is already the claim
        (a redelivery finds it, the sweeper waits out the lease), and the steps skipped — the rate
        limit, the SMS budget — do not apply to it. Only the console: if this process dies before
        the send, the sweeper sends a console delivery found "sending" again (it reaches no one),
        where a provider's would be recorded as unknown and never sent."""
        channel = self.channels.get(doc["channel"])
        return (getattr(channel, "name", None) == "console" and doc["channel"] not in SMS_CHANNELS
                and not self._rate_applies(doc))

    def _first_reachable(self, doc: dict, route: list[str], after: str | None = None) -> str | None:
        names = route[route.index(after) + 1:] if after in route else ([] if after else route)
        for name in names:
            channel = self.channels.get(name)
            if channel is not None and channel.can_reach(self._message({**doc, "channel": name, "_id": "probe"})):
                return name
        return None

    def _message(self, doc: dict) -> OutboundMessage:
        to = doc.get("to") or {}
        # A sign-in code is put in here, for the channel alone (signin_codes.py); stored: masked.
        text, params = self._with_code(doc, doc["text"], dict(doc.get("params") or {}))
        return OutboundMessage(message_id=doc["_id"], recipient_id=doc["recipient_id"], phone=to.get("phone"),
                               wecom_user=to.get("wecom_id"), openid=to.get("openid"),
                               template=doc["template_key"], params=params,
                               text=text, township=doc["township"])

    def on_due(self, doc: dict) -> None:
        """DueSweeper work: held, retrying and crashed-while-queued deliveries; stale claims."""
        status = doc["status"]
        if status in ("queued", "retrying", "claimed"):
            self._process(doc)  # held, due for a retry, or claimed by a worker that died before sending
        elif status == "sending":
            channel = self.channels.get(doc["channel"])
            if getattr(channel, "name", None) == "console":
                self._process(doc)  # reaches nobody: safe to send again
            else:
                self._cas(doc, status="unknown", error="interrupted", due_at=None,
                          error_detail="发送中断（进程退出），无法确定是否已发出，不再重发")
        else:
            self._cas(doc, due_at=None)

    def expire_counter(self, doc: dict) -> None:
        self.counters.delete(doc["_id"])

    def _cas(self, doc: dict, **changes) -> dict | None:
        """Stores `doc` with `changes` if nobody wrote it since it was read; None when someone did."""
        new = {**doc, **changes}
        try:
            stored = self.deliveries.replace(new, doc["version"])
        except VersionConflict:
            return None
        _count(stored, changes)
        return stored

    def _update(self, delivery_id: str, **changes) -> dict:
        """Applies `changes` whatever else was written meanwhile (the outcome of a send is a fact)."""
        for _ in range(MAX_CAS):
            current = self.deliveries.get(delivery_id)
            try:
                stored = self.deliveries.replace({**current, **changes}, current["version"])
            except VersionConflict:
                continue
            _count(stored, changes)
            return stored
        raise VersionConflict(delivery_id)
