"""intake's composition root."""
from __future__ import annotations

from shared.aggregates import Aggregates
from shared.config import setting
from shared.domain.signin_codes import phone_key
from shared.revocations import EVENTS as REVOCATION_EVENTS, Revocations
from shared.service import Context, ServiceParts
from shared.storage import Index
from shared.storage.blobs import blobs_for
from shared.sweeper import DueSweeper

from .kb_demo import load_demo
from .admin_api import build_admin_blueprint
from .api import build_blueprint
from .knowledge import KnowledgeBase
from .loop import ResidentLoop
from .page_desk import ResidentDesk, parse_townships
from .open311_api import build_open311_blueprints
from .resident_api import build_resident_blueprints
from .resident_sessions import ResidentSessions
from .resident_signin import ResidentSignIn
from .residents import ResidentTokens, TownshipSettings
from .service import IntakeService
from .web import build_pages
from .web.account import Access

# Every index costs each report's insert (and each case event's write): only what a query needs
# (issue 16). ``township`` alone is a prefix of the others; the Open311 listing by category reads
# (township, submitted_at) and filters the category from the rows.
REPORT_INDEXES = [Index.on("tracking_no", unique=True), Index.on("township", "status"),
                  # a client's Idempotency-Key: a resent POST finds the report it already made
                  Index.on("idempotency_key", unique=True, present="idempotency_key"),
                  # partial (SQLite): a report is due for its relay or its resend only for a moment;
                  # the full indexes held a NULL entry for every report ever made, moved on each clear
                  Index.on("outbox_due", present="outbox_due"), Index.on("resend_due", present="resend_due"),
                  # Open311 listing: a township's reports by date (optionally by category, from the rows)
                  Index.on("township", "submitted_at"),
                  # likely duplicates: same category and place (address, household, ~200 m cell, landing
                  # post), newest first within the window — submitted_at last, so the place's own index
                  # answers both the filter and the order, and no planner prefers a scan of the window
                  Index.on("township", "category", "address_key", "submitted_at", present="address_key"),
                  Index.on("township", "category", "household_id", "submitted_at", present="household_id"),
                  Index.on("township", "category", "geo_cell", "submitted_at", present="geo_cell"),
                  Index.on("township", "category", "landing_unit_id", "submitted_at", present="landing_unit_id"),
                  # no rating in time: a follow-up call (DueSweeper)
                  Index.on("rating_due", present="rating_due"),
                  # the Open311 updates feed (servicerequestupdates): a township's reports changed since
                  Index.on("township", "updated_at"),
                  # 我的反映: a signed-in resident's reports, by the phone's keyed hash, newest first
                  Index.on("township", "phone_key", "submitted_at", present="phone_key")]
FOLLOWUP_INDEXES = [Index.on("township", "created_at"), Index.on("township", "status", "created_at"),
                    Index.on("report_id"), Index.on("outbox_due")]
# The events intake handles: its queue's bindings are derived from this (shared.runtime.bindings).
# sla.* is not among them: a breach reaches the resident as the case.escalated it causes.
HANDLES = frozenset({"case.assigned", "case.accepted", "case.progress", "case.supervised", "case.escalated",
                     "case.reassigned", "case.resolved", "case.referred", "case.updated",
                     # the resident's loop (dispatch's resident_loop.py)
                     "case.reopened", "case.merged",
                     # pausing the clock: what the holder asks the resident for (supplements.py)
                     "case.paused", "case.resumed"}) | REVOCATION_EVENTS


def build(ctx: Context) -> ServiceParts:
    reports = Aggregates(ctx.store.collection("reports", REPORT_INDEXES), ctx.clock, ctx.waker)
    followups = Aggregates(ctx.store.collection("followups", FOLLOWUP_INDEXES), ctx.clock, ctx.waker)
    kb = KnowledgeBase(ctx.store, ctx.clock)
    settings = TownshipSettings(ctx.store.collection("township_settings"), ctx.clock)
    tokens = ResidentTokens(ctx.settings.secret)
    loop = ResidentLoop(reports, followups, kb, settings, tokens, blobs_for(ctx.store, "photos"), ctx.clock)
    secret = ctx.settings.secret
    service = IntakeService(reports, ctx.clock, loop, phone_key=(lambda phone: phone_key(secret, phone)) if secret else None)
    resident_access = _resident_access(ctx, service) if secret else None
    poll = max(ctx.settings.timer_poll, 5.0)
    revocations = Revocations(ctx.store, ctx.clock)   # people's revoked sessions (shared/revocations.py)
    followup_sweeper = DueSweeper("rating-followups", reports.collection, "rating_due", loop.create_followup,
                                  ctx.clock, poll=poll)
    return ServiceParts(
        name="intake",
        blueprints=[build_blueprint(service, tokens), *build_resident_blueprints(loop, tokens),
                    build_admin_blueprint(kb, loop, settings), *build_open311_blueprints(service),
                    *build_pages(ResidentDesk(service, loop, tokens, parse_townships(ctx.settings.pages_townships)),
                                 resident_access)],
        handlers={**{t: service.on_case_event for t in HANDLES - REVOCATION_EVENTS}, **revocations.handlers()},
        repos=[reports, followups, *([resident_access.signin.rules.repo] if resident_access else [])],
        # The case.* handlers only fold events into its own store (what they cause goes through the
        # outbox): a batch of them is one transaction, one write lock taken instead of one per event
        # (issue 16: the consumer waited for the lock the accept path holds, 17 % of its samples).
        batch_in_transaction=True,
        tasks=[DueSweeper("report-resend", reports.collection, "resend_due", service.resend, ctx.clock, poll=poll),
               followup_sweeper],
        api={"service": service, "reports": reports, "kb": kb, "loop": loop, "settings": settings,
             "tokens": tokens, "followups": followups, "resident_access": resident_access, "followup_sweeper": followup_sweeper,
             "load_demo": lambda: load_demo(kb), "session_checks": [revocations.allows]},
        warm_ups=[kb.warm],
    )


def _resident_access(ctx: Context, service: IntakeService) -> Access:
    """A resident's SMS sign-in and session (resident_signin.py), for the pages."""
    settings = ctx.settings
    sessions = ResidentSessions(ctx.store, ctx.clock, settings.secret, float(setting(settings, "SANZHANG_SESSION_HOURS")))
    signin = ResidentSignIn(ctx.store, ctx.clock, ctx.waker, secret=settings.secret,
                            previous_secret=settings.previous_secret, sessions=sessions,
                            address_limit=int(setting(settings, "SANZHANG_SIGNIN_ADDRESS_LIMIT")))
    return Access(signin, sessions, service, settings.secret)
