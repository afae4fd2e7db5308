"""escalation's composition root: the city's departments take over what no township level could solve."""
from __future__ import annotations

from datetime import timedelta

from shared.revocations import EVENTS as REVOCATION_EVENTS, Revocations
from shared.service import Context, ServiceParts
from shared.sweeper import DueSweeper

from .api import build_blueprints
from .service import EscalationService
from .webhooks import BATCH
from .web import build_pages

# department.* events escalation consumes itself: they feed the departments' webhooks.
DEPARTMENT_EVENTS = ("department.assigned", "department.accepted", "department.progress",
                     "department.extension_requested", "department.extension_decided", "department.return_ruled",
                     "department.released", "department.part_submitted", "department.sla_warning",
                     "department.sla_breached", "department.unmatched")
# Everything escalation handles: its queue's bindings are derived from this (shared.runtime.bindings),
# and the runtime refuses a handler map that differs from it.
HANDLES = frozenset({"case.referred", "report.submitted", *DEPARTMENT_EVENTS}) | REVOCATION_EVENTS


def build(ctx: Context) -> ServiceParts:
    service = EscalationService(ctx.store, ctx.clock, ctx.waker)
    poll = ctx.settings.timer_poll
    handlers = {"case.referred": service.on_case_referred, "report.submitted": service.on_report_submitted}
    handlers.update({kind: service.on_department_event for kind in DEPARTMENT_EVENTS})
    revocations = Revocations(ctx.store, ctx.clock)   # people's revoked sessions (shared/revocations.py)
    handlers.update(revocations.handlers())
    tasks = [
        DueSweeper("department-sla", service.referrals.collection, "timer_due", service.fire_timers, ctx.clock,
                   poll=poll),
        DueSweeper("department-webhooks", service.webhooks.deliveries, "next_due", service.webhooks.deliver,
                   ctx.clock, poll=poll, lease=timedelta(seconds=120), batch=BATCH),
        DueSweeper("referral-index-repair", service.referrals.collection, "index_due", service.repair_index,
                   ctx.clock, poll=max(poll, 5.0)),
        DueSweeper("idempotency-expiry", service.idempotency.records, "expires_at", service.idempotency.expire,
                   ctx.clock, poll=max(poll, 60.0)),
        DueSweeper("report-copy-expiry", service.copies, "purge_due", service.purge_copy, ctx.clock,
                   poll=max(poll, 60.0)),
    ]
    return ServiceParts(
        name="escalation",
        blueprints=[*build_blueprints(service), *build_pages(service, ctx.issuer)],
        handlers=handlers,
        repos=[service.referrals],
        tasks=tasks,
        # Its handlers only write to its own store (webhooks go out through their outbox and sweeper):
        # a batch of events is one transaction, not a commit each (issue 16: report.submitted's copy
        # was a commit per report).
        batch_in_transaction=True,
        api={"service": service, "referrals": service.referrals, "directory": service.directory,
             "auth_resolvers": [service.directory.resolve_token], "session_checks": [revocations.allows]},
    )
