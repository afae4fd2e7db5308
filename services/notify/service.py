"""notify's use cases: who hears what, through which channel, at most once."""
from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from shared.clock import Clock, iso, parse_iso
from shared.ids import derived_id
from shared.privacy import mask_phone
from shared.storage import DuplicateKey, Index, Store

from .channels.base import OutboundMessage, PermanentSendError, RetryableSendError
from .templates import case_params, render

log = logging.getLogger(__name__)
LOCAL = ZoneInfo("Asia/Shanghai")

DELIVERY_INDEXES = [Index.on("township"), Index.on("case_id"), Index.on("status"), Index.on("event_id")]


def local_time(text: str | None) -> str:
    if not text:
        return ""
    return parse_iso(text).astimezone(LOCAL).strftime("%m月%d日%H:%M")


class NotifyService:
    def __init__(self, store: Store, channels: dict, clock: Clock):
        self.contacts = store.collection("contacts", [Index.on("township")])
        self.deliveries = store.collection("deliveries", DELIVERY_INDEXES)
        self.channels = channels
        self.clock = clock

    # -- directory ------------------------------------------------------------------------------
    def on_contacts_changed(self, event: dict) -> None:
        township = event["township"]
        for lead in event["payload"]["leads"]:
            self.contacts.upsert({"_id": lead["unit_id"], "township": township, **lead})

    # -- case events ----------------------------------------------------------------------------
    def on_case_assigned(self, event: dict) -> None:
        payload = event["payload"]
        assignee = payload["assignee"]
        contact = self.contacts.get(assignee["unit_id"]) if assignee.get("unit_id") else None
        params = case_params(payload, local_time(payload.get("due_at")))
        self.deliver(event, recipient_id=assignee.get("unit_id") or f"township:{event['township']}",
                     role="assignee", contact=contact or {}, params=params)

    def deliver(self, event: dict, *, recipient_id: str, role: str, contact: dict, params: dict,
                channel_name: str = "console") -> dict | None:
        text = render(event["type"], role, params)
        if text is None:
            return None
        delivery_id = derived_id("delivery", event["id"], recipient_id, channel_name)
        now = self.clock.now()
        record = {
            "_id": delivery_id, "township": event["township"], "case_id": event["payload"].get("case_id"),
            "event_id": event["id"], "event_type": event["type"], "recipient_id": recipient_id,
            "recipient_role": role, "recipient_name": contact.get("name"), "channel": channel_name,
            "phone_masked": mask_phone(contact.get("phone")), "text": text, "length": len(text),
            "status": "sending", "created_at": iso(now), "provider_message_id": None, "error": None,
        }
        try:
            # Claiming the (event, recipient, channel) slot before sending is what makes a
            # redelivered event send nothing: the second insert finds the first.
            self.deliveries.insert(record)
        except DuplicateKey:
            return self.deliveries.get(delivery_id)
        message = OutboundMessage(
            message_id=delivery_id, recipient_id=recipient_id, phone=contact.get("phone"),
            wecom_user=contact.get("wecom_id"), openid=contact.get("openid"), template=event["type"],
            params={k: str(v) for k, v in params.items()}, text=text, township=event["township"])
        channel = self.channels[channel_name]
        try:
            result = channel.send(message)
            record.update(status=result.status if result.status in ("sent", "delivered") else "sent",
                          provider_message_id=result.provider_message_id, sent_at=iso(self.clock.now()))
        except (PermanentSendError, RetryableSendError) as exc:
            record.update(status="failed", error=f"{exc.__class__.__name__}: {getattr(exc, 'code', '')}")
        stored = self.deliveries.get(delivery_id)
        self.deliveries.replace(record, stored["version"])
        return record

    def log_for(self, township: str | None, case_id: str | None, limit: int, skip: int) -> list[dict]:
        where = {}
        if township:
            where["township"] = township
        if case_id:
            where["case_id"] = case_id
        return self.deliveries.find(where, limit=limit, skip=skip)
