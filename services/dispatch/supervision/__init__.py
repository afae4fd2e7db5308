"""Supervision (督办与考核): the township's board, the 三率 figures, leads' points and cards, visits.

Wiring (dispatch's composition root): the cases repository is a ``CaseFacts`` (facts.py), so every
case carries its derived figure columns; ``Supervision`` adds the projector's handlers for
dispatch's own events, two sweepers (supervision answer times, household visit due times) and the
HTTP blueprints (api.py, and the board page with its static files).
"""
from __future__ import annotations

from datetime import timedelta

from shared.sweeper import DueSweeper

from .cards import Cards
from .facts import CASE_FIGURE_COLUMNS, CASE_FIGURE_INDEXES, CaseFacts
from .exchanges import Exchanges
from .figures import FigureQueries
from .ledger import Ledger, Projector
from .rollups import Rollups
from .rules import Rules
from .visits import Visits

__all__ = ["CASE_FIGURE_COLUMNS", "CASE_FIGURE_INDEXES", "CaseFacts", "Supervision", "village_lookup",
           "merge_handlers"]


def village_lookup(org):
    """neighbourhood id → its village's id, remembered (ids are derived from the org path)."""
    cache: dict[str, str | None] = {}

    def village_of(unit_id: str) -> str | None:
        if unit_id not in cache:
            chain = org.chain_from(unit_id)
            cache[unit_id] = next((u["_id"] for u in chain if u["level"] == "village"), None)
        return cache[unit_id]
    return village_of


def merge_handlers(*tables: dict) -> dict:
    """One handler per event type: two parts of dispatch wanting the same type both run, in order
    (each is idempotent, so a redelivery after a partial failure is harmless)."""
    merged: dict = {}
    for table in tables:
        for kind, handler in table.items():
            if kind in merged:
                first = merged[kind]

                def both(event, first=first, second=handler):
                    first(event)
                    second(event)
                merged[kind] = both
            else:
                merged[kind] = handler
    return merged


class Supervision:
    def __init__(self, ctx, org, cases: CaseFacts, escalator):
        self.org = org
        self.cases = cases
        self.clock = ctx.clock
        self.rules = Rules(ctx.store)
        self.ledger = Ledger(ctx.store, self.rules)
        self.projector = Projector(ctx.store, cases, self.ledger, self.rules, ctx.clock)
        self.stints = self.projector.stints
        # Figures come from rollups kept by the writes that change them (rollups.py).
        self.rollups = Rollups(ctx.store, cases.collection, self.stints, ctx.clock)
        cases.rollups = self.projector.rollups = self.rollups
        self.rollups.ensure_built()   # an upgrade's data, built once by the sweeper below
        self.figures = FigureQueries(cases.collection, self.stints, org, self.rollups)
        self.visits = Visits(ctx.store, org, self.ledger, ctx.clock)
        self.cards = Cards(ctx.store, org, self.ledger, self.stints, self.rules, cases, escalator, ctx.clock)
        self.exchanges = Exchanges(ctx.store, self.ledger, org, ctx.clock)   # 积分超市
        poll = max(ctx.settings.timer_poll, 1.0)
        self.sweepers = [
            DueSweeper("supervision-answers", self.projector.watches, "due", self.projector.fire_watch, ctx.clock,
                       poll=poll, lease=timedelta(minutes=5)),
            DueSweeper("visit-due", org.households, "next_visit_due", self.visits.fire_due, ctx.clock,
                       poll=max(poll, 30.0), lease=timedelta(minutes=5)),
            # Days whose figures changed: recomputed here, or by the next read, whichever comes first.
            DueSweeper("figure-rollups", self.rollups.dirty, "due", self.rollups.settle_one, ctx.clock,
                       poll=poll, lease=timedelta(minutes=5)),
        ]

    def handlers(self) -> dict:
        return self.projector.handlers()

    def blueprints(self) -> list:
        from .api import build_board_page, build_supervision_blueprint

        return [build_supervision_blueprint(self), build_board_page()]

    def sweep(self) -> int:
        """Test and CLI helper: runs both sweepers once."""
        return sum(s.run_once() for s in self.sweepers)
