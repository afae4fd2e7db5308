"""What the SLA sweeper does with a claimed case: fire what is due, escalate breaches, reschedule.

Runs in any number of dispatch replicas: DueSweeper's claim is atomic, so each due timer reaches
one of them; the work itself goes through Aggregates.mutate, so it also loses cleanly to a lead's
action made in between (the timer is then stale and only rescheduled).
"""
from __future__ import annotations

import logging
from datetime import datetime

from shared.aggregates import Aggregates, NotFound, Unchanged
from shared.clock import Clock, iso

from . import pausing, transitions
from .chain import Escalator
from .timers import DEADLINE_OF, PAUSE_END, next_timer, schedule, still_due

log = logging.getLogger(__name__)

MAX_FIRINGS = 8  # per claim; a case needing more would have a policy of zero-length limits


class SlaTimers:
    def __init__(self, cases: Aggregates, escalator: Escalator, clock: Clock):
        self.cases = cases
        self.escalator = escalator
        self.clock = clock

    def fire(self, claimed: dict) -> list[dict]:
        """One claimed case's work. Returns the events staged (none for a stale timer)."""
        staged = self._fire(claimed)
        self._log(claimed, staged)
        return staged

    def fire_batch(self, claimed: list[dict]) -> dict[str, Exception]:
        """DueSweeper's work on a claim: every case changed from the claimed document and the
        batch written at once, each a compare-and-set (Aggregates.mutate_claimed); a case a lead
        changed since the claim is done again from what is stored. Returns the failures by id."""
        staged: dict[str, list[dict]] = {}
        # One instant for the whole claim (the moment it was worked on): its cases escalated
        # together share their assignment time, so their deadlines are worked out once (sla.py).
        now = self.clock.now()

        def work(doc: dict) -> None:
            staged[doc["_id"]] = self._fire(doc, now)

        with self.escalator.org.reading_once():  # a claim climbs the same few chains
            failed = self.cases.mutate_claimed(claimed, work)
        for doc in claimed:
            if doc["_id"] not in failed:
                self._log(doc, staged.get(doc["_id"], []))
        return failed

    @staticmethod
    def _log(claimed: dict, staged: list[dict]) -> None:
        if staged:
            log.info("sla timer fired: %s", ",".join(e["type"] for e in staged),
                     extra={"case_id": claimed["_id"], "township": claimed.get("township")})

    def _fire(self, claimed: dict, now: datetime | None = None) -> list[dict]:
        claimed_timer = claimed.get("timer")
        now = now or self.clock.now()
        staged: list[dict] = []

        def change(case: dict):
            staged.clear()  # a compare-and-set retry starts over from the stored case
            before = case.get("timer_due")
            if still_due(case, claimed_timer, now):
                staged.extend(self._fire_due(case, now))
            schedule(case)
            if not staged and case["timer_due"] == before:
                raise Unchanged
            return list(staged)

        try:
            self.cases.mutate(claimed["_id"], change)
        except NotFound:
            return []
        return list(staged)

    def _fire_due(self, case: dict, now: datetime) -> list[dict]:
        """Every timer of the case due by ``now``, in order, so a sweep that runs late catches up."""
        events: list[dict] = []
        for _ in range(MAX_FIRINGS):
            timer = next_timer(case)
            if timer is None or timer.due > iso(now):
                break
            cause = f"timer:{case['_id']}:{case['step']}:{timer.kind}"
            if timer.kind == PAUSE_END:
                # The cap, or the date the holder gave for an outside event: the clock runs again.
                why = "until" if case["pause"].get("until") == timer.due else "cap"
                events += pausing.resume(case, transitions.SYSTEM, now, why=why,
                                         caused_by=f"{cause}:{case['pause']['id']}")
                continue
            if timer.kind in DEADLINE_OF:
                case.setdefault("warned", []).append(timer.kind)
                if case[DEADLINE_OF[timer.kind]] <= iso(now):
                    continue  # the deadline is past too: its breach, fired next, says more
                events += transitions.warn(case, timer.kind, now, caused_by=cause)
            else:
                events += transitions.breach(case, timer.kind, now, caused_by=cause)
                events += self.escalator.escalate(case, now, reason=transitions.BREACH_REASONS[timer.kind],
                                                  actor=transitions.SYSTEM, caused_by=cause)
        return events
