"""dispatch's composition root."""
from __future__ import annotations

from shared.aggregates import Aggregates
from shared.service import Context, ServiceParts
from shared.storage import Index

from .api import build_blueprint
from .handlers import DispatchHandlers, Policies
from .org import OrgRepository

CASE_INDEXES = [
    Index.on("report_id", unique=True), Index.on("township"), Index.on("township", "status"),
    Index.on("unit_id"), Index.on("status"), Index.on("timer_due"), Index.on("outbox_due"),
]


def build(ctx: Context) -> ServiceParts:
    org = OrgRepository(ctx.store, ctx.clock, ctx.waker)
    cases = Aggregates(ctx.store.collection("cases", CASE_INDEXES), ctx.clock, ctx.waker)
    policies = Policies(org)
    handlers = DispatchHandlers(org, cases, policies, ctx.clock)
    return ServiceParts(
        name="dispatch",
        blueprints=[build_blueprint(org, cases)],
        handlers=handlers.handlers(),
        repos=[cases, org.imports],
        api={"org": org, "cases": cases, "policies": policies},
    )
