"""The embedded default channel: nothing leaves the machine.

A laptop or a township server without SMS/WeChat contracts still needs the notify loop to
run end to end, so this channel "delivers" into an injected sink (a list, the delivery
log, a dev UI) and writes one log line.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from shared.domain import phones

from .base import Clock, OutboundMessage, SendResult, scrub, system_clock

log = logging.getLogger(__name__)

LogSink = Callable[[dict[str, Any]], None]


class ConsoleChannel:
    name = "console"

    def __init__(self, log_sink: LogSink | None = None, now: Clock = system_clock):
        self._sink = log_sink or (lambda entry: None)
        self._now = now

    def can_reach(self, msg: OutboundMessage) -> bool:
        return True

    def send(self, msg: OutboundMessage) -> SendResult:
        # The sink stands in for the recipient's handset, so it gets the text as written;
        # the address is masked because nothing here needs to reach anyone. The address a real
        # channel would have used is recorded, and a missing one said loudly: the console
        # "delivers" everything, so without this a person nobody can reach would look reached.
        address = _address(msg)
        self._sink({
            "channel": self.name,
            "at": self._now().isoformat(),
            "message_id": msg.message_id,
            "recipient_id": msg.recipient_id,
            "township": msg.township,
            "template": msg.template,
            "params": dict(msg.params),
            "text": msg.text,
            "phone": phones.mask(msg.phone),
            "wecom_user": msg.wecom_user,
            "openid": msg.openid,
            "address": address,
            "unreachable": address is None,
        })
        if log.isEnabledFor(logging.INFO):  # the masking is for this line alone: not paid when unwritten
            log.info(
                "console message_id=%s recipient=%s phone=%s address=%s template=%s text=%s",
                msg.message_id, msg.recipient_id, phones.mask(msg.phone) or "-",
                address or "NONE (unreachable: no phone, WeCom id or openid)", msg.template, scrub(msg.text),
            )
        return SendResult(provider_message_id=f"console-{msg.message_id}", status="delivered")


def _address(msg: OutboundMessage) -> str | None:
    """What a real channel would have sent to: the phone (masked), else the WeCom id, else the openid."""
    if phones.normalise(msg.phone):
        return phones.mask(phones.normalise(msg.phone))
    if msg.wecom_user:
        return f"wecom:{msg.wecom_user}"
    if msg.openid:
        return f"openid:{msg.openid}"
    return None
