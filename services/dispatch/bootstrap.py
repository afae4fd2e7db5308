"""dispatch's composition root."""
from __future__ import annotations

from shared.aggregates import Aggregates
from shared.service import Context, ServiceParts
from shared.storage import Index
from shared.sweeper import DueSweeper

from shared.domain.statuses import OPEN_STATUSES
from .demo_roster import load_demo
from .api import build_blueprint
from .case_api import build_case_blueprint
from .chain import Escalator
from .contact_book import ContactBook
from .contacts_api import build_contacts_blueprint
from .desk import CaseDesk
from .firing import SlaTimers
from .department_events import handlers as department_handlers
from .pause_events import handlers as pause_handlers
from .case_photos import handlers as photo_handlers
from .handlers import DispatchHandlers
from .org import OrgRepository
from .policies import Policies
from .policy_api import build_policy_blueprint
from .merge_api import build_merge_blueprint
from .people import HANDLES as PEOPLE_HANDLES, People
from .resident_loop import ResidentLoop
from .supervision import CASE_FIGURE_COLUMNS, CASE_FIGURE_INDEXES, CaseFacts, Supervision, merge_handlers, village_lookup
from .web import build_pages

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
                                    "level", {"status": {"$in": list(OPEN_STATUSES)}}).items()]),
    }


# Everything dispatch handles (its handlers, supervision's projector, the resident's loop, the
# departments' verdicts): its queue's bindings are derived from this (shared.runtime.bindings), and
# the runtime refuses a handler map that differs from it. Its own case.* and sla.* events come back
# to the supervision projector (stints, points ledger) — except case.assigned: a new case is projected
# and linked in the transaction that opens it (DispatchHandlers.on_open; issue 16).
HANDLES = frozenset({
    "report.submitted", "report.rated", "report.followed", "followup.completed",
    "case.accepted", "case.progress", "case.supervised", "case.escalated", "case.reassigned",
    "case.resolved", "case.referred", "case.updated", "case.merged", "case.signed_off", "case.returned",
    "sla.warning", "sla.breached",
    "department.assigned", "department.accepted", "department.sla_breached", "department.part_submitted",
    # pausing the clock: the resident's answer resumes a case paused for them (pause_events.py)
    "report.supplemented", "case.paused", "case.resumed",
    # photos attached to a report after it was made (case_photos.py)
    "report.photo_added",
}) | PEOPLE_HANDLES


def build(ctx: Context) -> ServiceParts:
    routes_json = (ctx.settings.extra or {}).get("SANZHANG_NOTIFY_ROUTES")
    org = OrgRepository(ctx.store, ctx.clock, ctx.waker, routes_json)
    # Cases carry their derived figure columns, written with every change (supervision/facts.py).
    cases = CaseFacts(ctx.store.collection("cases", CASE_INDEXES + CASE_FIGURE_INDEXES, columns=CASE_FIGURE_COLUMNS),
                      ctx.clock, ctx.waker, village_of=village_lookup(org))
    policies = Policies(org)
    # Which channels reach a lead or the township's staff is notify's table; dispatch reads it to
    # tell which posts nobody can be reached at (shared/domain/reachability.py).
    book = ContactBook(org, routes_json)
    escalator = Escalator(org, policies)
    handlers = DispatchHandlers(org, cases, policies, ctx.clock)
    desk = CaseDesk(org, cases, policies, escalator, ctx.clock)
    timers = SlaTimers(cases, escalator, ctx.clock)
    # Timers are data on the cases: any number of replicas sweep them, each claim is atomic.
    # A claim's breaches are written together, each still a compare-and-set (firing.py); a burst
    # starts at its due instant, not up to a poll later (issue 16).
    sweeper = DueSweeper("sla-timers", cases.collection, "timer_due", timers.fire, ctx.clock,
                         poll=ctx.settings.timer_poll, work_batch=timers.fire_batch, at_due=True)
    supervision = Supervision(ctx, org, cases, escalator)
    supervision.reachability = book.reachability
    handlers.on_open.append(supervision.projector.project_new)
    # The resident's loop: reopening on 不满意, following and merging duplicates (resident_loop.py).
    resident_loop = ResidentLoop(org, cases, policies, escalator, ctx.clock)
    # People: accounts, sign-in with a code, sessions (people.py); needs the secret to sign them.
    people = People(ctx, org, desk) if ctx.settings.secret else None
    parts = ServiceParts(
        name="dispatch",
        blueprints=[build_blueprint(org, cases, book.reachability), build_case_blueprint(desk),
                    build_policy_blueprint(policies), *supervision.blueprints(), build_merge_blueprint(resident_loop),
                    build_contacts_blueprint(book), *build_pages(org, desk, ctx.issuer, supervision)],
        handlers=merge_handlers(handlers.handlers(), supervision.handlers(), resident_loop.handlers(),
                                department_handlers(cases, ctx.clock), pause_handlers(cases, ctx.clock),
                                # after pause_handlers: it marks report.supplemented applied, photos are kept by address
                                photo_handlers(cases, ctx.clock)),
        repos=[cases, org.imports],
        # Its handlers write cases, org and supervision rows and stage events in outboxes; nothing else.
        batch_in_transaction=True,
        tasks=[sweeper, *supervision.sweepers],
        api={"org": org, "cases": cases, "policies": policies, "desk": desk, "timers": timers,
             "sweeper": sweeper, "escalator": escalator, "supervision": supervision, "resident_loop": resident_loop,
             "gauges": _gauges(cases.collection), "handlers": handlers,
             "contact_book": book, "load_demo": lambda: load_demo(org, book)},
    )
    return retire_case_assigned(with_people(parts, people), supervision, people)


def retire_case_assigned(parts: ServiceParts, supervision: Supervision, people: People | None) -> ServiceParts:
    """Versions before issue 16 projected a new case's stints and wrote its link on their own
    case.assigned. A queue they declared keeps that binding, and a case one of them opened during a
    rolling upgrade gets its stints and link only from that event: so it is still handled when it
    arrives (each step idempotent), though no longer bound on a new queue."""
    heal = [supervision.projector.on_case_event] + ([people.links.on_case_event] if people else [])
    parts.handlers = merge_handlers(parts.handlers, *({"case.assigned": step} for step in heal))
    parts.retired = frozenset({"case.assigned"})
    return parts


def with_people(parts: ServiceParts, people: People | None) -> ServiceParts:
    """Adds people's blueprints, handlers, outboxes and session check (people.py) to dispatch."""
    noop = {kind: (lambda event: None) for kind in PEOPLE_HANDLES}
    parts.handlers = merge_handlers(parts.handlers, people.handlers() if people else noop)
    if people:
        parts.api["handlers"].on_open.append(people.links.link_case)
        parts.blueprints.extend(people.blueprints())
        parts.repos.extend(people.repos)
        parts.api.update(people=people, session_checks=[people.sessions.allows])
    return parts
