"""dispatch's event handlers."""
from __future__ import annotations

import logging
from typing import Callable

from shared.aggregates import Aggregates
from shared.clock import Clock
from shared.domain.ids import case_id_for, township_unit_id
from shared.storage import DuplicateKey

from .cases import new_case
from .org import OrgRepository, has_lead

log = logging.getLogger(__name__)


class DispatchHandlers:
    def __init__(self, org: OrgRepository, cases: Aggregates, policies, clock: Clock):
        self.org = org
        self.cases = cases
        self.policies = policies
        self.clock = clock
        # What else a newly opened case needs written (its stints, its short link): done here, in the
        # consumer's transaction with the case, rather than by consuming its own case.assigned (issue
        # 16: that second delivery was a quarter of dispatch's CPU). Each is idempotent.
        self.on_open: list[Callable[[dict], None]] = []

    def handlers(self) -> dict:
        return {"report.submitted": self.on_report_submitted}

    def on_report_submitted(self, event: dict) -> None:
        report = event["payload"]
        township = event["township"]
        existing = self.cases.get(case_id_for(report["report_id"]))
        if existing is not None:
            # Redelivered: the case exists and its events are in its outbox or sent. Where the store
            # has no multi-document transaction (MongoDB) the projections may not: write them again.
            self._opened(existing)
            return
        now = self.clock.now()
        household = self.org.locate(township, report.get("household_id"), report.get("address"),
                                    report.get("reporter_phone"))
        unit, located, neighbourhood_id, skipped = self.route(township, household)
        case, events = new_case(report, township, unit, self.policies.get(township), now, located=located,
                                neighbourhood_id=neighbourhood_id, skipped=skipped, event_id=event["id"],
                                household=household)
        try:
            stored = self.cases.add(case, events)
        except DuplicateKey:
            return  # a concurrent delivery of the same event won the race: same case, same events
        self._opened(stored)
        log.info("case opened at %s", case["level"], extra={"case_id": case["_id"], "township": township})

    def _opened(self, case: dict) -> None:
        for step in self.on_open:
            step(case)

    def route(self, township: str, household: dict | None) -> tuple[dict, bool, str | None, list[dict]]:
        """The neighbourhood's lead; a vacant post passes the case to the next level that has one."""
        if household is None:
            return self._township_unit(township), False, None, []
        skipped = []
        for unit in self.org.climb(household["neighbourhood_id"]):
            if has_lead(unit):
                return unit, True, household["neighbourhood_id"], skipped
            skipped.append(unit)
        return self._township_unit(township), True, household["neighbourhood_id"], skipped

    def _township_unit(self, township: str) -> dict:
        unit = self.org.unit(township_unit_id(township))
        if unit is None:
            # A report for a township with no roster yet still needs a holder: its staff.
            self.org.ensure_township(township, township)
            unit = self.org.unit(township_unit_id(township))
        return unit

