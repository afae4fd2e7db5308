"""Sign-in codes: the one message whose text must never be kept.

``signin.code_requested`` names a challenge, never its code. notify stores the notice with the
code masked (the delivery log, the dead letters and every log line only ever hold ``******``) and
derives the code from the challenge id with the shared secret only when it builds the message a
channel sends (shared/domain/signin_codes.py). Codes go by the ``signin`` route (console unless
SANZHANG_NOTIFY_ROUTES names an SMS channel for it); they are urgent: never held by quiet hours,
never merged into a digest. One number gets at most PER_HOUR codes a clock hour from all services
together (``_admit_code``): the services each count only their own.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime, timedelta, timezone

from shared.clock import iso
from shared.domain import phones
from shared.domain.signin_codes import MASK, PER_HOUR, code_for, phone_key

from .channels import SendResult
from .recipients import Recipient

log = logging.getLogger(__name__)

TEMPLATE = "signin.code_requested:person"
# Every template that carries a code: a lead's or staff's, and a resident's (worded for a resident).
TEMPLATES = frozenset({TEMPLATE, "signin.code_requested:resident"})


class SigninCodes:
    """Part of NotifyService (services/notify/service.py), which holds the stores, channels and settings."""

    secret: str | None = None

    def on_signin_code(self, event: dict) -> None:
        p = event["payload"]
        contact = {"phone": p.get("phone"), "wecom_id": p.get("wecom_id"), "openid": None}
        role = "resident" if p.get("audience") == "resident" else "person"
        recipient = Recipient(p["recipient_id"], role, "signin", p.get("name"), contact)
        self._notify(event, [recipient], {"code": MASK, "minutes": "5", "challenge_id": p["challenge_id"]})

    def _admit_code(self, doc: dict, now: datetime) -> bool:
        """At most PER_HOUR sign-in codes a clock hour to one phone number, whichever service asked:
        each service counts its own challenges (shared/signin_challenges.py), so a number that signs
        in at intake (a resident) and at dispatch (a lead) could be sent twice as many; notify sends
        them all and holds the one count. Keyed by the number's keyed hash, never the number."""
        phone = phones.normalise((doc.get("to") or {}).get("phone"))
        if not phone or not self.secret:
            return True  # no number (WeCom only) or no secret (no code can be made either)
        hour = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
        counter_id = f"signin:{phone_key(self.secret, phone)}:{iso(hour)}"
        return self._take(counter_id, 1, PER_HOUR, hour + timedelta(hours=2))

    def _refuse_code(self, doc: dict) -> dict | None:
        """Over the number's hourly count: recorded, not sent, and no other channel tries (it is the
        number that is limited, not the channel)."""
        log.warning("notify signin code over the hourly limit for its number delivery=%s phone=%s",
                    doc["_id"], doc.get("phone_masked") or "-")
        return self._cas(doc, status="skipped", error="signin_phone_limit",
                         error_detail=f"该号码本小时已发送{PER_HOUR}条登录验证码，请稍后再试", due_at=None,
                         next_attempt_at=None, failed_at=iso(self.clock.now()))

    def _with_code(self, doc: dict, text: str, params: dict) -> tuple[str, dict]:
        """The clear text for the channel alone: the stored text and params keep the mask."""
        challenge_id = (doc.get("params") or {}).get("challenge_id")
        if doc.get("template_key") not in TEMPLATES or not challenge_id or not self.secret:
            return text, params
        code = code_for(self.secret, challenge_id)
        clear = {k: v for k, v in params.items() if k != "challenge_id"}
        clear["code"] = code
        return text.replace(MASK, code), clear


class ConsoleCodes:
    """The console channel with sign-in codes kept out of its log line and its sink: a code's
    message goes to ``terminal`` alone (the embedded demo's stand-in for a phone), if set."""

    name = "console"

    def __init__(self, inner):
        self.inner = inner
        self.terminal = None

    def can_reach(self, msg) -> bool:
        return self.inner.can_reach(msg)

    def send(self, msg) -> SendResult:
        if msg.template not in TEMPLATES:
            return self.inner.send(msg)
        log.info("console message_id=%s recipient=%s phone=%s template=%s text=(登录验证码，不记入日志)",
                 msg.message_id, msg.recipient_id, phones.mask(msg.phone) or "-", msg.template)
        if self.terminal is not None:
            self.terminal(msg)
        return SendResult(provider_message_id=f"console-{msg.message_id}", status="delivered")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def terminal_printer(stream=None):
    """The embedded demo's stand-in for a phone: the console channel shows a sign-in code on the
    terminal running `make run` (stdout, not the log)."""
    def show(msg) -> None:
        if msg.template in TEMPLATES:
            print(f"[短信 → {msg.params.get('name') or ''}] {msg.text}", file=stream or sys.stdout, flush=True)
    return show
