"""notify's use cases: who hears what, through which channel, at most once.

One *notice* is one (event, recipient) pair. It is carried by one or more *deliveries*, one per
channel tried, in the order the route for the recipient's kind and township names them:

    queued ──▶ claimed ──▶ sending ──▶ sent ──(receipt)──▶ delivered | failed
      ▲  │          │          ├──▶ retrying ──(backoff, DueSweeper)──▶ claimed …
      │  │          │          ├──▶ failed ──▶ next channel in the route (a new delivery) … ──▶ dead letter
      │  │          │          └──▶ unknown (timed out / interrupted: may have been sent; never resent)
      │  │          ├──▶ skipped (cannot reach, SMS budget spent) ──▶ next channel
      │  │          └──▶ merged (rate limit: folded into the digest its window's first excess message carries)
      └──┴── hold_reason quiet_hours | sms_budget | rate_limit: due_at says when the sweeper takes it up

At most once: a delivery's id is derived from (event, recipient, channel) and the notice's first
delivery also claims the unique slot "<notice>/0", so a redelivered event inserts nothing new;
the moves to "claimed" and to "sending" are compare-and-sets, so one worker alone calls the
provider; and a send whose outcome is unknown is never repeated (only the console, which reaches
no one, is sent again).
"""
from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta, timezone
from typing import Callable, NamedTuple

from shared.clock import Clock, iso, parse_iso
from shared.domain.ids import derived_id, short_hash, township_unit_id
from shared.domain.phones import mask as mask_phone
from shared.metrics import NOTIFICATIONS
from shared.storage import DuplicateKey, Index, Store, VersionConflict

from .channels.base import OutboundMessage, PermanentSendError, RetryableSendError
from .config import SMS_CHANNELS, ConfigError, NotifySettings
from .templates import TEMPLATES, case_params, department_params, render, sms_length, variables_for

log = logging.getLogger(__name__)

DELIVERY_INDEXES = [
    Index.on("township"), Index.on("case_id"), Index.on("status"), Index.on("event_id"),
    Index.on("due_at"), Index.on("provider_message_id"), Index.on("notice_slot", unique=True),
    Index.on("created_at"),
]
DIGEST_KEY = "notify.digest:recipient"
FINAL = frozenset({"delivered", "failed", "merged", "skipped"})
MAX_CAS = 50
STAFF_TITLE = "镇(街道)工作人员"


class Recipient(NamedTuple):
    recipient_id: str
    role: str
    kind: str                 # lead | resident | staff | department
    name: str | None
    contact: dict             # phone, wecom_id, openid


OUTCOMES = {"sent", "delivered", "failed", "unknown", "merged", "skipped"}


def _count(stored: dict, changes: dict) -> None:
    """Counts an outcome once: when the write that set it succeeded."""
    status = changes.get("status")
    if status in OUTCOMES:
        NOTIFICATIONS.labels(stored.get("channel") or "none", status).inc()


def _address(contact: dict | None) -> dict:
    contact = contact or {}
    return {k: contact.get(k) or None for k in ("phone", "wecom_id", "openid")}


class NotifyService:
    def __init__(self, store: Store, channels: dict, clock: Clock, settings: NotifySettings | None = None):
        self.settings = settings or NotifySettings()
        self.channels = channels
        self.clock = clock
        self.contacts = store.collection("contacts", [Index.on("township")])
        self.residents = store.collection("residents", [Index.on("township")])
        self.deliveries = store.collection("deliveries", DELIVERY_INDEXES)
        self.counters = store.collection("counters", [Index.on("expires_at")])
        self.templates = store.collection("templates", [Index.on("township")])
        # notify's dead letters: notices no channel could deliver (see the README section).
        self.dead = store.collection("dead", [Index.on("township"), Index.on("case_id")])
        missing = sorted(self.settings.routes.channel_names() - set(channels))
        if missing:
            raise ConfigError("SANZHANG_NOTIFY_ROUTES names channels that are not configured: "
                              + ", ".join(missing))

    def handlers(self) -> dict[str, Callable[[dict], None]]:
        return {
            "report.submitted": self.on_report_submitted,
            "org.contacts_changed": self.on_contacts_changed,
            "case.assigned": self.on_case_event, "case.escalated": self.on_case_event,
            "case.reassigned": self.on_case_event, "case.supervised": self.on_case_event,
            "case.accepted": self.on_case_event, "case.resolved": self.on_case_event,
            "case.signed_off": self.on_case_event,
            "sla.warning": self.on_case_event, "sla.breached": self.on_case_event,
            "case.reopened": self.on_case_event, "case.merged": self.on_case_event,
            "report.rating_requested": self.on_resident_loop_event,
            "followup.created": self.on_resident_loop_event,
            "department.assigned": self.on_department_event,
            "department.sla_breached": self.on_department_event,
        }

    # == directory ===============================================================================
    def on_contacts_changed(self, event: dict) -> None:
        """The township's leads as dispatch knows them now: posts gone from the list are dropped."""
        township = event["township"]
        listed = set()
        for lead in event["payload"]["leads"]:
            if not lead.get("unit_id"):
                continue
            listed.add(lead["unit_id"])
            self.contacts.upsert({**lead, "_id": lead["unit_id"], "township": township})
        for old in self.contacts.find({"township": township}):
            if old["_id"] not in listed:
                self.contacts.delete(old["_id"])

    def on_report_submitted(self, event: dict) -> None:
        """Remembers how to reach the resident who reported, for the case's later news."""
        p = event["payload"]
        if not (p.get("reporter_phone") or p.get("reporter_openid")):
            return
        try:
            self.residents.insert({"_id": p["report_id"], "township": event["township"],
                                   "phone": p.get("reporter_phone"), "openid": p.get("reporter_openid"),
                                   "name": p.get("reporter_name"), "created_at": iso(self.clock.now())})
        except DuplicateKey:
            pass  # redelivery

    # == who hears what ==========================================================================
    def on_case_event(self, event: dict) -> None:
        p = event["payload"]
        township, kind = event["township"], event["type"]
        assignee = p.get("assignee") or {}
        previous = p.get("previous")
        if kind in ("case.assigned", "case.escalated", "case.supervised", "case.reopened"):
            recipients = self._holder(township, assignee, "assignee")
        elif kind == "case.reassigned":
            recipients = self._holder(township, assignee, "assignee") + \
                (self._holder(township, previous, "previous") if previous else [])
        elif kind == "sla.warning":
            recipients = self._holder(township, assignee, "assignee") + self._supervisor(township, assignee)
        elif kind == "sla.breached":
            # The breach is recorded against the holder who let the time run out (the payload's
            # assignee, or its "previous" when the producer sends the new holder along). The new
            # holder hears it from the case.escalated the breach causes, whose reason names it.
            old = previous or assignee
            recipients = self._holder(township, old, "previous") + self._township_staff(township, "township")
        elif kind == "case.accepted":
            recipients = self._resident(township, p["report_id"])
        elif kind in ("case.resolved", "case.signed_off"):
            # The resident hears of a resolution once, from intake's report.rating_requested, which
            # carries the rating link and is sent to every report that follows the case.
            return
        elif kind == "case.merged":
            reports = p.get("linked_report_ids") or [p["report_id"]]
            recipients = [r for report_id in reports for r in self._resident(township, report_id)]
        else:
            return
        params = case_params(p, due_local=self._local(p.get("due_at")),
                             promise_local=self._local(p.get("promise_due")))
        self._notify(event, recipients, params)

    def on_resident_loop_event(self, event: dict) -> None:
        """intake's rating request to a resident; a follow-up call (回访) owed by township staff."""
        p = event["payload"]
        township = event["township"]
        params = case_params(p)
        if event["type"] == "report.rating_requested":
            params["rate_url"] = p.get("rate_url") or "“三长制”小程序（凭查询码）"
            recipients = self._resident(township, p["report_id"])
        else:
            recipients = self._township_staff(township, "staff")
        self._notify(event, recipients, params)

    def on_department_event(self, event: dict) -> None:
        p = event["payload"]
        dept_id = p["department_id"]
        contact = dict(self.settings.departments.get(dept_id) or {})
        for field, key in (("contact_phone", "phone"), ("wecom_id", "wecom_id"), ("contact_name", "name")):
            if p.get(field):
                contact[key] = p[field]
        recipient = Recipient(f"department:{dept_id}", "department", "department",
                              p.get("department_name") or contact.get("name"), _address(contact))
        params = department_params(p, due_local=self._local(p.get("due_at")))
        self._notify(event, [recipient], params)

    def _holder(self, township: str, assignee: dict | None, role: str) -> list[Recipient]:
        if not assignee:
            return []
        level = assignee.get("level")
        if level == "department":
            return []  # departments hear through department.* events, which name them
        if level == "township":
            return self._township_staff(township, role)
        unit_id = assignee.get("unit_id")
        if not unit_id:
            return []
        contact = self.contacts.get(unit_id) or {}
        return [Recipient(unit_id, role, "lead", contact.get("name") or assignee.get("lead_name"), _address(contact))]

    def _supervisor(self, township: str, assignee: dict) -> list[Recipient]:
        """The holder of the post above; the township's staff when that post is vacant or unknown."""
        if assignee.get("level") in ("township", "department") or not assignee.get("unit_id"):
            return []
        own = self.contacts.get(assignee["unit_id"]) or {}
        parent_id = own.get("parent_id")
        parent = self.contacts.get(parent_id) if parent_id else None
        if parent and parent.get("level") != "township" and (parent.get("name") or parent.get("phone")):
            return [Recipient(parent_id, "supervisor", "lead", parent.get("name"), _address(parent))]
        return self._township_staff(township, "supervisor")

    def _township_staff(self, township: str, role: str) -> list[Recipient]:
        """Configured people (SANZHANG_NOTIFY_TOWNSHIP_STAFF) or else the township unit's contact."""
        people = self.settings.township_staff.get(township)
        if people:
            return [Recipient(f"staff:{township}:{short_hash(p.get('name', ''), p.get('phone', ''), p.get('wecom_id', ''))}",
                              role, "staff", p.get("name") or STAFF_TITLE, _address(p)) for p in people]
        unit_id = township_unit_id(township)
        contact = self.contacts.get(unit_id) or {}
        return [Recipient(unit_id, role, "staff", contact.get("name") or STAFF_TITLE, _address(contact))]

    def _resident(self, township: str, report_id: str) -> list[Recipient]:
        known = self.residents.get(report_id) or {}
        handle = known.get("phone") or known.get("openid")
        # One resident, one rate-limit budget, whichever report the news is about.
        rid = f"resident:{short_hash(township, handle)}" if handle else f"resident:{report_id}"
        return [Recipient(rid, "resident", "resident", known.get("name"), _address(known))]

    # == opening a notice ========================================================================
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
        text = render(key, params, signature=self.settings.signature, overrides=self._overrides(township))
        if text is None:
            return None
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
        return self._process(stored)

    def _first_reachable(self, doc: dict, route: list[str], after: str | None = None) -> str | None:
        names = route[route.index(after) + 1:] if after in route else ([] if after else route)
        for name in names:
            channel = self.channels.get(name)
            if channel is not None and channel.can_reach(self._message({**doc, "channel": name, "_id": "probe"})):
                return name
        return None

    def _message(self, doc: dict) -> OutboundMessage:
        to = doc.get("to") or {}
        return OutboundMessage(message_id=doc["_id"], recipient_id=doc["recipient_id"], phone=to.get("phone"),
                               wecom_user=to.get("wecom_id"), openid=to.get("openid"),
                               template=doc["template_key"], params=dict(doc.get("params") or {}),
                               text=doc["text"], township=doc["township"])

    # == quiet hours, rate limit, budget =========================================================
    def _quiet_until(self, now: datetime, doc: dict) -> datetime | None:
        s = self.settings
        if (doc.get("urgent") or not s.quiet.enabled or doc["recipient_kind"] not in s.quiet_kinds
                or doc["channel"] in s.exempt_channels):
            return None
        local = now.astimezone(s.timezone)
        t = local.time().replace(tzinfo=None)
        start, end = s.quiet.start, s.quiet.end
        if start < end:
            if not (start <= t < end):
                return None
            day = local.date()
        else:
            if not (t >= start or t < end):
                return None
            day = local.date() if t < end else local.date() + timedelta(days=1)
        return datetime.combine(day, end, tzinfo=s.timezone).astimezone(timezone.utc)

    def _window(self, now: datetime) -> tuple[int, datetime]:
        w = self.settings.rate_window
        start = int(now.timestamp()) // w * w
        return start, datetime.fromtimestamp(start + w, timezone.utc)

    def _take(self, counter_id: str, amount: int, limit: int, expires_at: datetime, *, force: bool = False) -> bool:
        """Adds `amount` to a counter unless that passes `limit`; atomic by compare-and-set."""
        for _ in range(MAX_CAS):
            current = self.counters.get(counter_id)
            count = current["count"] if current else 0
            if not force and count + amount > limit:
                return False
            try:
                if current is None:
                    self.counters.insert({"_id": counter_id, "count": amount, "carrier": None,
                                          "expires_at": iso(expires_at)})
                else:
                    self.counters.replace({**current, "count": count + amount}, current["version"])
                return True
            except (DuplicateKey, VersionConflict):
                continue
        raise VersionConflict(counter_id)

    def _rate_applies(self, doc: dict) -> bool:
        s = self.settings
        return s.rate_limit > 0 and doc["channel"] not in s.exempt_channels

    def _budget_counter(self, township: str, now: datetime) -> tuple[str, datetime]:
        hour = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
        return f"sms:{township}:{iso(hour)}", hour + timedelta(hours=1)

    # == sending =================================================================================
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

    # == rate-limit digests ======================================================================
    def _merge(self, doc: dict, counter_id: str, window_end: datetime) -> dict | None:
        """Past the limit: the window's first excess message becomes the digest's carrier, due at the
        window's end; later ones are folded into it and never sent on their own. `doc` is claimed."""
        doc = self._cas(doc, status="merged", counted=True, hold_reason=None, due_at=None)
        if doc is None:
            return None
        item = {"delivery_id": doc["_id"], "tracking_no": doc.get("tracking_no"), "template_key": doc["template_key"],
                "case_id": doc.get("case_id")}
        for _ in range(MAX_CAS):
            counter = self.counters.get(counter_id)
            if counter is None:  # the window's counter expired meanwhile: try again in the new window
                return self._process(self._update(doc["_id"], status="queued", counted=False))
            carrier_id = counter.get("carrier")
            carrier = self.deliveries.get(carrier_id) if carrier_id and carrier_id != doc["_id"] else None
            if carrier and carrier["status"] == "queued" and carrier.get("hold_reason") == "rate_limit":
                if not any(m["delivery_id"] == doc["_id"] for m in carrier.get("merged", [])):
                    if self._cas(carrier, merged=carrier.get("merged", []) + [item]) is None:
                        continue  # changed, or claimed by the sweeper: look again
                log.info("notify rate limit: delivery=%s merged into %s", doc["_id"], carrier["_id"])
                return self._update(doc["_id"], merged_into=carrier["_id"])
            try:
                self.counters.replace({**counter, "carrier": doc["_id"]}, counter["version"])
            except VersionConflict:
                continue
            due = window_end
            quiet = None if doc.get("urgent") else self._quiet_until(window_end, doc)
            if quiet:
                due = max(due, quiet)
            log.info("notify rate limit: delivery=%s carries the digest due %s", doc["_id"], iso(due))
            return self._update(doc["_id"], status="queued", hold_reason="rate_limit", due_at=iso(due), merged=[],
                                merged_into=None)
        raise VersionConflict(counter_id)

    def _fire_digest(self, doc: dict, now: datetime) -> dict:
        """The carrier's time has come: it counts in the new window and, when messages were folded
        into it, its text becomes the digest."""
        start, end = self._window(now)
        self._take(f"rate:{doc['recipient_id']}:{start}", 1, 0, end + timedelta(seconds=self.settings.rate_window),
                   force=True)
        merged = doc.get("merged") or []
        if not merged:
            return {**doc, "hold_reason": None}
        numbers = [n for n in dict.fromkeys([doc.get("tracking_no")] + [m.get("tracking_no") for m in merged]) if n]
        params = {"name": doc["params"].get("name", ""), "count": str(1 + len(merged)),
                  "minutes": str(max(1, self.settings.rate_window // 60)), "tracking_nos": ""}
        overrides = self._overrides(doc["township"])
        text = None
        for k in range(len(numbers), 0, -1):
            listed = "、".join(numbers[:k]) + ("等" if k < len(numbers) else "")
            candidate = render(DIGEST_KEY, {**params, "tracking_nos": listed}, signature=self.settings.signature,
                               overrides=overrides, limit=10_000)
            text = candidate
            if len(candidate) <= 70:
                break
        params["tracking_nos"] = "、".join(numbers)
        length, segments = sms_length(text)
        return {**doc, "hold_reason": None, "template_key": DIGEST_KEY, "params": params, "text": text,
                "length": length, "segments": segments, "original_text": doc["text"],
                "original_template_key": doc["template_key"]}

    # == the sweeper's work ======================================================================
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

    # == receipts ================================================================================
    def receipt(self, channel: str, provider_id: str | None, our_id: str | None, ok: bool, code: str | None,
                at: str | None) -> bool:
        """Applies one delivery receipt; True when it matched a delivery. Idempotent."""
        docs = []
        if provider_id:
            docs = [d for d in self.deliveries.find({"provider_message_id": provider_id}) if d["channel"] == channel]
        if not docs and our_id:
            mine = self.deliveries.get(our_id)
            docs = [mine] if mine and mine["channel"] == channel else []
        for doc in docs:
            self._apply_receipt(doc["_id"], ok, code, at)
        return bool(docs)

    def _apply_receipt(self, delivery_id: str, ok: bool, code: str | None, at: str | None) -> None:
        now = iso(self.clock.now())
        failed_now = False
        for _ in range(MAX_CAS):
            doc = self.deliveries.get(delivery_id)
            if doc is None or doc["status"] in FINAL or doc["status"] not in ("sent", "unknown", "sending"):
                return
            receipt = {"ok": ok, "code": code, "at": at, "received_at": now}
            changes = ({"status": "delivered", "delivered_at": at or now} if ok else
                       {"status": "failed", "error": code or "receipt_failed", "error_detail": "运营商回执：未送达",
                        "failed_at": now})
            if self._cas(doc, receipt=receipt, due_at=None, **changes) is not None:
                failed_now = not ok
                break
        if failed_now:
            self._fallback(self.deliveries.get(delivery_id), code or "receipt_failed")

    # == storage helpers =========================================================================
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

    def _local(self, text: str | None) -> str:
        if not text:
            return ""
        return parse_iso(text).astimezone(self.settings.timezone).strftime("%m月%d日%H:%M")

    # == templates per township ==================================================================
    def _overrides(self, township: str) -> dict:
        doc = self.templates.get(township)
        return dict(doc.get("templates") or {}) if doc else {}

    def template_view(self, township: str) -> dict:
        from .templates import SAMPLE

        overrides = self._overrides(township)
        rows = []
        for key in sorted(TEMPLATES):
            event_type, role = key.split(":", 1)
            text = render(key, SAMPLE, signature=self.settings.signature, overrides=overrides)
            length, segments = sms_length(text)
            rows.append({"key": key, "event_type": event_type, "role": role, "default": TEMPLATES[key],
                         "override": overrides.get(key), "variables": sorted(variables_for(key)),
                         "sample": text, "length": length, "segments": segments})
        doc = self.templates.get(township) or {}
        return {"township": township, "signature": self.settings.signature, "templates": rows,
                "updated_at": doc.get("updated_at"), "updated_by": doc.get("updated_by")}

    def set_templates(self, township: str, overrides: dict, actor: str | None) -> dict:
        kept = {k: v for k, v in overrides.items() if v}
        self.templates.upsert({"_id": township, "township": township, "templates": kept,
                               "updated_at": iso(self.clock.now()), "updated_by": actor})
        return self.template_view(township)

    # == views ===================================================================================
    def log_for(self, township: str | None, case_id: str | None, limit: int, skip: int,
                status: str | None = None) -> list[dict]:
        where = {}
        if township:
            where["township"] = township
        if case_id:
            where["case_id"] = case_id
        if status:
            where["status"] = status
        return self.deliveries.find(where, sort=[("created_at", 1)], limit=limit, skip=skip)

    def dead_letters(self, township: str, case_id: str | None, limit: int, skip: int) -> list[dict]:
        where = {"township": township}
        if case_id:
            where["case_id"] = case_id
        return self.dead.find(where, limit=limit, skip=skip)
