"""notify's composition root: channels and settings from the environment, the injected clock."""
from __future__ import annotations

import logging
from dataclasses import replace

from shared.revocations import EVENTS as REVOCATION_EVENTS, Revocations
from shared.service import Context, ServiceParts
from shared.sweeper import DueSweeper

from .api import build_blueprint
from .resident_messages_api import build_resident_messages_blueprint
from .channels import build_channels
from .config import NotifySettings
from .service import NotifyService
from .signin_codes import ConsoleCodes, terminal_printer

log = logging.getLogger(__name__)

# Everything notify handles (NotifyService.handlers): its queue's bindings are derived from this
# (shared.runtime.bindings), and the runtime refuses a handler map that differs from it.
HANDLES = frozenset({
    "case.assigned", "case.accepted", "case.escalated", "case.reassigned", "case.resolved", "case.supervised",
    "case.signed_off", "case.reopened", "case.merged", "sla.warning", "sla.breached", "org.contacts_changed",
    "report.submitted", "department.assigned", "department.sla_breached",
    # the resident's loop: the rating request (with its link) and follow-up tasks for staff
    "report.rating_requested", "followup.created",
    # pausing the clock: 请补充材料 to the resident, the resumed clock to the holder
    "case.paused", "case.resumed",
    # people's sign-in: the code's message (signin_codes.py) and revoked sessions (shared/revocations.py)
    "signin.code_requested",
}) | REVOCATION_EVENTS


def build(ctx: Context, *, opener=None) -> ServiceParts:
    environ = dict(ctx.settings.extra or {})
    settings = NotifySettings.from_env(environ)
    if ctx.settings.demo and ctx.settings.embedded and not settings.link_base:
        # `make run`: messages' short links point at this run (docs/sign-in.md).
        settings = replace(settings, link_base=f"http://{ctx.settings.host}:{ctx.settings.port}")
    # The providers' adapters sign requests and cache tokens on the same clock the rest runs on.
    channels = build_channels(environ, now=ctx.clock.now, opener=opener)
    service = NotifyService(ctx.store, channels, ctx.clock, settings, secret=ctx.settings.secret)
    channels["console"] = ConsoleCodes(channels["console"])   # no sign-in code in its log (signin_codes.py)
    if ctx.settings.demo and ctx.settings.embedded:
        channels["console"].terminal = terminal_printer()   # `make run`'s terminal stands for the phone
    revocations = Revocations(ctx.store, ctx.clock)
    log.info("notify channels: %s", ", ".join(sorted(channels)))
    # Held (quiet hours, budget, digests), retrying and interrupted deliveries are data with a
    # due time; any replica claims them atomically.
    sweeper = DueSweeper("notify-deliveries", service.deliveries, "due_at", service.on_due, ctx.clock,
                         poll=ctx.settings.timer_poll)
    janitor = DueSweeper("notify-counters", service.counters, "expires_at", service.expire_counter, ctx.clock,
                         poll=max(ctx.settings.timer_poll, 30.0))
    return ServiceParts(
        name="notify",
        blueprints=[build_blueprint(service), build_resident_messages_blueprint(service)],
        handlers={**service.handlers(), **revocations.handlers()},
        tasks=[sweeper, janitor],
        # Sending is part of handling: only the console, which reaches no one, may be sent inside
        # a transaction (sent again if it never commits); a provider's text must follow a commit.
        batch_in_transaction=all(getattr(c, "name", None) == "console" for c in channels.values()),
        api={"service": service, "sweeper": sweeper, "janitor": janitor, "channels": channels,
             "session_checks": [revocations.allows]},
    )
