"""Climbing the chain 邻 → 组 → 片 → 村 → 镇 → 市直部门: who holds a case next."""
from __future__ import annotations

from datetime import datetime

from shared.domain.ids import township_unit_id

from . import transitions
from .org import OrgRepository, has_lead
from .policies import Policies


class Escalator:
    def __init__(self, org: OrgRepository, policies: Policies):
        self.org = org
        self.policies = policies

    def next_holder(self, case: dict) -> tuple[dict | None, list[dict]]:
        """The first unit above the case's holder with someone in post, and the vacant ones passed.

        None means the case is already with the township: next come the city's departments.
        """
        if case["level"] == "township":
            return None, []
        skipped = []
        unit = self.org.unit(case["unit_id"]) if case.get("unit_id") else None
        # Climb one parent at a time: the next post up is nearly always held.
        while unit is not None and unit.get("parent_id"):
            unit = self.org.unit(unit["parent_id"])
            if unit is None:
                break
            if has_lead(unit):
                return unit, skipped
            skipped.append(unit)
        # The post left the org (a roster re-import removed it): the township picks the case up.
        return self.township_unit(case["township"]), skipped

    def township_unit(self, township: str) -> dict:
        unit = self.org.unit(township_unit_id(township))
        if unit is None:
            self.org.ensure_township(township, township)
            unit = self.org.unit(township_unit_id(township))
        return unit

    def escalate(self, case: dict, at: datetime, *, reason: str, actor: transitions.Actor,
                 note: str | None = None, caused_by: str | None = None) -> list[dict]:
        unit, skipped = self.next_holder(case)
        if unit is None:
            return transitions.refer(case, at, reason=reason, actor=actor, note=note, caused_by=caused_by)
        return transitions.move_up(case, unit, self.policies.get(case["township"]), at, reason=reason,
                                   actor=actor, note=note, skipped=skipped, caused_by=caused_by)
