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
        # the address is masked because nothing here needs to reach anyone.
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
        })
        log.info(
            "console message_id=%s recipient=%s phone=%s template=%s text=%s",
            msg.message_id, msg.recipient_id, phones.mask(msg.phone) or "-", msg.template,
            scrub(msg.text),
        )
        return SendResult(provider_message_id=f"console-{msg.message_id}", status="delivered")
