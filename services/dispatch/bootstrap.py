"""dispatch's composition root."""
from __future__ import annotations

from shared.aggregates import Aggregates
from shared.service import Context, ServiceParts
from shared.storage import Index
from shared.sweeper import DueSweeper

from .api import build_blueprint
from .case_api import build_case_blueprint
from .chain import Escalator
from .desk import CaseDesk
from .firing import SlaTimers
from .handlers import DispatchHandlers
from .org import OrgRepository
from .policies import Policies
from .policy_api import build_policy_blueprint

CASE_INDEXES = [
    Index.on("report_id", unique=True), Index.on("township"), Index.on("township", "status"),
    Index.on("unit_id"), Index.on("status"), Index.on("timer_due"), Index.on("outbox_due"),
    # Staff lists: newest first, narrowed by level.
    Index.on("township", "created_at"), Index.on("township", "level"),
]


def _gauges(collection) -> dict:
    """Cases by state and open cases by level, read from the database at scrape time."""
    return {
        "sanzhang_cases": ("Cases by status", ["status"],
                           lambda: [({"status": k}, v) for k, v in collection.group_count("status").items()]),
        "sanzhang_open_cases": ("Open cases by level", ["level"],
                                lambda: [({"level": k}, v) for k, v in collection.group_count(
                                    "level", {"status": {"$in": ["assigned", "accepted"]}}).items()]),
    }


def build(ctx: Context) -> ServiceParts:
    org = OrgRepository(ctx.store, ctx.clock, ctx.waker)
    cases = Aggregates(ctx.store.collection("cases", CASE_INDEXES), ctx.clock, ctx.waker)
    policies = Policies(org)
    escalator = Escalator(org, policies)
    handlers = DispatchHandlers(org, cases, policies, ctx.clock)
    desk = CaseDesk(org, cases, policies, escalator, ctx.clock)
    timers = SlaTimers(cases, escalator, ctx.clock)
    # Timers are data on the cases: any number of replicas sweep them, each claim is atomic.
    sweeper = DueSweeper("sla-timers", cases.collection, "timer_due", timers.fire, ctx.clock,
                         poll=ctx.settings.timer_poll)
    return ServiceParts(
        name="dispatch",
        blueprints=[build_blueprint(org, cases), build_case_blueprint(desk), build_policy_blueprint(policies)],
        handlers=handlers.handlers(),
        repos=[cases, org.imports],
        tasks=[sweeper],
        api={"org": org, "cases": cases, "policies": policies, "desk": desk, "timers": timers,
             "sweeper": sweeper, "escalator": escalator, "gauges": _gauges(cases.collection)},
    )
