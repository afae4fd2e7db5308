"""intake's composition root."""
from __future__ import annotations

from shared.aggregates import Aggregates
from shared.service import Context, ServiceParts
from shared.storage import Index
from shared.sweeper import DueSweeper

from .api import build_blueprint
from .open311 import build_open311_blueprints
from .service import IntakeService

REPORT_INDEXES = [Index.on("tracking_no", unique=True), Index.on("township"), Index.on("township", "status"),
                  Index.on("outbox_due"), Index.on("resend_due"),
                  # Open311 listing: a township's reports by date, optionally by category
                  Index.on("township", "submitted_at"), Index.on("township", "category", "submitted_at")]


def build(ctx: Context) -> ServiceParts:
    reports = Aggregates(ctx.store.collection("reports", REPORT_INDEXES), ctx.clock, ctx.waker)
    service = IntakeService(reports, ctx.clock)
    case_events = ("case.assigned", "case.accepted", "case.progress", "case.supervised", "case.escalated",
                   "case.reassigned", "case.resolved", "case.referred", "case.updated")
    return ServiceParts(
        name="intake",
        blueprints=[build_blueprint(service), *build_open311_blueprints(service)],
        handlers={t: service.on_case_event for t in case_events},
        repos=[reports],
        tasks=[DueSweeper("report-resend", reports.collection, "resend_due", service.resend, ctx.clock,
                          poll=max(ctx.settings.timer_poll, 5.0))],
        api={"service": service, "reports": reports},
    )
