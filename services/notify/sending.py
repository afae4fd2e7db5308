"""Sending one delivery: claim it, pass the rate limit, the SMS budget and reach, call the channel;
retry with backoff, record an unknown outcome without resending, fall back to the next channel,
and dead-letter a notice no channel could deliver."""
from __future__ import annotations

import copy
import logging
from datetime import timedelta

from shared.clock import iso
from shared.domain.ids import derived_id
from shared.storage import DuplicateKey

from .channels.base import PermanentSendError, RetryableSendError
from .config import SMS_CHANNELS
from .signin_codes import TEMPLATES as CODE_TEMPLATES

log = logging.getLogger(__name__)


class Sending:
    """Part of NotifyService (services/notify/service.py), which holds the stores, channels and settings."""

    def _process(self, doc: dict) -> dict | None:
        """Takes a queued, retrying or stale delivery through rate limit, budget and reach, then sends.

        The first step claims the delivery by compare-and-set ("claimed"): whoever wins owns it
        (a consumer, a redelivery of the same event, a sweeper in another replica); the others
        stop. A claim whose owner died is taken over by the sweeper after the lease — nothing
        has been sent at that point, so taking it over doubles nothing."""
        now = self.clock.now()
        s = self.settings
        doc = self._cas(doc, status="claimed", due_at=iso(now + timedelta(seconds=s.send_lease)))
        if doc is None:
            return None  # another worker has it
        if doc.get("hold_reason") == "rate_limit":
            doc = self._fire_digest(doc, now)
        elif not doc.get("counted"):
            if self._rate_applies(doc):
                start, end = self._window(now)
                counter_id = f"rate:{doc['recipient_id']}:{start}"
                if not self._take(counter_id, 1, s.rate_limit, end + timedelta(seconds=s.rate_window),
                                  force=bool(doc.get("urgent"))):
                    return self._merge(doc, counter_id, end)
            doc = {**doc, "counted": True}
        if doc.get("template_key") in CODE_TEMPLATES and not doc.get("code_counted"):
            if not self._admit_code(doc, now):
                return self._refuse_code(doc)
            doc = {**doc, "code_counted": True}   # a fallback's copy keeps it: one code, counted once
        channel = self.channels.get(doc["channel"])
        if channel is None or not channel.can_reach(self._message(doc)):
            return self._give_up(doc, "skipped", "unreachable", "channel absent or cannot reach this recipient")
        if doc["channel"] in SMS_CHANNELS and not doc.get("budget_taken"):
            counter_id, hour_end = self._budget_counter(doc["township"], now)
            budget = s.budget_for(doc["township"])
            if budget and not self._take(counter_id, doc["segments"], budget, hour_end + timedelta(hours=1)):
                if self._first_reachable(doc, doc["route"], after=doc["channel"]):
                    return self._give_up(doc, "skipped", "sms_budget", "township SMS budget for this hour used up")
                log.warning("notify sms budget used up township=%s delivery=%s held", doc["township"], doc["_id"])
                return self._cas(doc, status="queued", hold_reason="sms_budget", due_at=iso(hour_end))
            doc = {**doc, "budget_taken": doc["segments"] if budget else 0, "budget_counter": counter_id}
        sending = self._cas(doc, status="sending", hold_reason=None, attempts=doc.get("attempts", 0) + 1,
                            last_attempt_at=iso(now), due_at=iso(now + timedelta(seconds=s.send_lease)))
        if sending is None:
            return None  # lost the claim meanwhile (held past its lease): the new owner sends
        return self._send(sending)

    def _send(self, doc: dict) -> dict:
        s = self.settings
        channel = self.channels[doc["channel"]]
        try:
            result = channel.send(self._message(doc))
        except RetryableSendError as exc:
            if exc.code == "timeout":
                # The provider may have accepted it before we stopped waiting: resending could
                # text the person twice. Recorded as unknown; a receipt may settle it later.
                log.warning("notify send timed out delivery=%s channel=%s: outcome unknown", doc["_id"], doc["channel"])
                return self._update(doc["_id"], status="unknown", error=exc.code, error_detail=exc.message, due_at=None)
            if doc["attempts"] >= s.max_attempts:
                return self._give_up(doc, "failed", exc.code, f"{s.max_attempts}次尝试均失败：{exc.message}", fresh=False)
            delay = min(s.retry_base * 2 ** (doc["attempts"] - 1), s.retry_cap)
            at = iso(self.clock.now() + timedelta(seconds=delay))
            log.info("notify retry delivery=%s channel=%s code=%s in %ss", doc["_id"], doc["channel"], exc.code, delay)
            return self._update(doc["_id"], status="retrying", error=exc.code, error_detail=exc.message,
                                next_attempt_at=at, due_at=at)
        except PermanentSendError as exc:
            return self._give_up(doc, "failed", exc.code, exc.message, fresh=False)
        except Exception as exc:  # a bug in an adapter: recorded, and the next channel tries
            log.exception("notify channel %s raised", doc["channel"])
            return self._give_up(doc, "failed", "internal_error", exc.__class__.__name__, fresh=False)
        now = iso(self.clock.now())
        status = "delivered" if result.status == "delivered" else "sent"
        log.info("notify %s delivery=%s channel=%s recipient=%s phone=%s", status, doc["_id"], doc["channel"],
                 doc["recipient_id"], doc.get("phone_masked") or "-")
        changes = dict(status=status, provider_message_id=result.provider_message_id, sent_at=now,
                       delivered_at=now if status == "delivered" else None, error=None, error_detail=None,
                       next_attempt_at=None, due_at=None)
        # Compare-and-set on the "sending" write first: if it holds, nobody wrote since — no receipt
        # overtook the send — and the read below is saved (issue 16).
        stored = self._cas(doc, **changes)
        if stored is not None:
            return stored
        current = self.deliveries.get(doc["_id"])
        if current and current.get("receipt"):
            # A receipt (matched by our id) overtook this write: it knows more than "sent".
            changes = {k: changes[k] for k in ("provider_message_id", "sent_at", "next_attempt_at", "due_at")}
        return self._update(doc["_id"], **changes)

    def _give_up(self, doc: dict, status: str, code: str, detail: str, *, fresh: bool = True) -> dict | None:
        """This channel is done with the notice: record why, release unused budget, try the next."""
        changes = dict(status=status, error=code, error_detail=detail, due_at=None, next_attempt_at=None,
                       failed_at=iso(self.clock.now()))
        updated = self._cas(doc, **changes) if fresh else self._update(doc["_id"], **changes)
        if updated is None:
            return None
        if doc.get("budget_taken") and doc.get("budget_counter"):
            # Nothing went out, so nothing is billed (a refused request costs nothing).
            self._take(doc["budget_counter"], -doc["budget_taken"], 0, self.clock.now(), force=True)
        log.warning("notify %s delivery=%s channel=%s code=%s", status, doc["_id"], doc["channel"], code)
        self._fallback(updated, code)
        return updated

    def _fallback(self, doc: dict, reason: str) -> dict | None:
        nxt = self._first_reachable(doc, doc["route"], after=doc["channel"])
        if nxt is None:
            self._dead_letter(doc, reason)
            return None
        now = self.clock.now()
        seq = doc.get("seq", 0) + 1
        new = copy.deepcopy({k: v for k, v in doc.items() if k != "version"})
        new.update(_id=derived_id("delivery", doc["event_id"], doc["recipient_id"], nxt), channel=nxt, seq=seq,
                   notice_slot=f"{doc['notice_id']}/{seq}", status="queued", hold_reason=None,
                   due_at=iso(now + timedelta(seconds=self.settings.send_lease)), attempts=0,
                   budget_taken=0, budget_counter=None, provider_message_id=None, error=None, error_detail=None,
                   created_at=iso(now), sent_at=None, delivered_at=None, failed_at=None, next_attempt_at=None,
                   fallback_of=doc["_id"], receipt=None, counted=True)
        try:
            stored = self.deliveries.insert(new)
        except DuplicateKey:
            return None  # this fallback was already made
        log.info("notify fallback delivery=%s -> %s channel=%s", doc["_id"], stored["_id"], nxt)
        return self._process(stored)

    def _dead_letter(self, doc: dict, reason: str) -> None:
        try:
            self.dead.insert({
                "_id": doc["notice_id"], "township": doc["township"], "case_id": doc.get("case_id"),
                "tracking_no": doc.get("tracking_no"), "event_id": doc["event_id"], "event_type": doc["event_type"],
                "recipient_id": doc["recipient_id"], "recipient_role": doc["recipient_role"],
                "recipient_name": doc.get("recipient_name"), "phone_masked": doc.get("phone_masked"),
                "route": doc.get("route"), "last_delivery_id": doc.get("_id") if doc.get("channel") else None,
                "reason": reason, "text": doc.get("text"), "at": iso(self.clock.now()),
            })
            log.error("notify undeliverable notice=%s event=%s recipient=%s reason=%s", doc["notice_id"],
                      doc["event_type"], doc["recipient_id"], reason)
        except DuplicateKey:
            pass
