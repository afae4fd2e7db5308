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

The work is split along its seams, one module each, composed into ``NotifyService`` here:
``recipients`` (who hears what), ``deliveries`` (opening a notice, compare-and-set writes, the
sweeper's work), ``sending`` (claim, send, retry, fall back, dead-letter), ``limits`` (quiet hours,
rate limit, SMS budget), ``digests`` (rate-limit digests), ``receipts`` (provider receipts),
``template_admin`` (a township's templates), ``delivery_log`` (what staff read) and
``resident_messages`` (which news reaches a resident: the rule in ``resident_policy``).
"""
from __future__ import annotations

from typing import Callable

from shared.clock import Clock, parse_iso
from shared.storage import Index, Store

from .config import ConfigError, NotifySettings
from .deliveries import DELIVERY_INDEXES, Deliveries
from .delivery_log import DeliveryLog
from .digests import Digests
from .limits import Limits
from .receipts import Receipts
from .recipients import RecipientRules
from .signin_codes import SigninCodes
from .case_links import CaseLinks
from .resident_messages import ResidentMessages
from .sending import Sending
from .template_admin import TemplateAdmin


class NotifyService(RecipientRules, Deliveries, Sending, Limits, Digests, Receipts, TemplateAdmin, DeliveryLog,
                    SigninCodes, CaseLinks, ResidentMessages):
    def __init__(self, store: Store, channels: dict, clock: Clock, settings: NotifySettings | None = None,
                 secret: str | None = None):
        self.settings = settings or NotifySettings()
        self.secret = secret
        self.channels = channels
        self.clock = clock
        self.contacts = store.collection("contacts", [Index.on("township")])
        # Every post with its parent and people (org.contacts_changed "posts"): what a message climbs
        # when its recipient has no usable address (recipients.py _reach).
        self.posts = store.collection("posts", [Index.on("township")])
        self.residents = store.collection("residents", [Index.on("township")])
        self.deliveries = store.collection("deliveries", DELIVERY_INDEXES)
        self.counters = store.collection("counters", [Index.on("expires_at")])
        self.templates = store.collection("templates", [Index.on("township")])
        # notify's dead letters: notices no channel could deliver (see the README section).
        self.dead = store.collection("dead", [Index.on("township"), Index.on("case_id")])
        # what residents are texted (resident_policy.py): each township's choice, and the first telling of each news
        self.resident_policies = store.collection("resident_policies")
        self.resident_told = store.collection("resident_told", [Index.on("township")])
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
            "case.paused": self.on_case_event, "case.resumed": self.on_case_event,
            "report.rating_requested": self.on_resident_loop_event,
            "followup.created": self.on_resident_loop_event,
            "department.assigned": self.on_department_event,
            "department.sla_breached": self.on_department_event,
            "signin.code_requested": self.on_signin_code,
        }

    def _local(self, text: str | None) -> str:
        if not text:
            return ""
        t = parse_iso(text).astimezone(self.settings.timezone)
        # strftime("%m月%d日%H:%M") spelled out: strftime with non-ASCII text was 6 % of a case event (issue 16)
        return f"{t.month:02d}月{t.day:02d}日{t.hour:02d}:{t.minute:02d}"
