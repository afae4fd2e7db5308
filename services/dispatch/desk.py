"""Leads' and township staff's use cases on cases: who may see and do what, then store the change.

A lead sees the cases its post holds now; township staff see every case of their townships and
hold the ones at township level. A case the caller may not see does not exist for it (404), so a
lead learns nothing about its neighbours' cases; a visible case in the wrong state is a 409.
"""
from __future__ import annotations

import copy
from typing import Callable

from shared.aggregates import Aggregates, NotFound
from shared.auth import Principal
from shared.clock import Clock
from shared.domain.ids import township_unit_id
from shared.domain.levels import POST_TITLES, UNIT_NAMES
from shared.domain.statuses import CLOSED_STATUSES, OPEN_STATUSES

from . import pausing, sla, transitions, views
from .chain import Escalator
from .org import OrgRepository, has_lead
from .policies import Policies
from .transitions import STATUS_TEXT, Actor, WrongState

# Filters the store cannot answer (timing, supervision) are applied to at most this many of a
# township's cases: far more than any township has open at once.
MAX_SCAN = 5000
STAFF = ("staff", "operator")


class CaseNotVisible(Exception):
    """404: no such case for this caller."""


class NotHolder(Exception):
    """403: the caller sees the case but does not hold it."""


class BadField(Exception):
    """422 naming the request field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _refusals(change: Callable[[dict, object], list[dict]]) -> Callable[[dict, object], list[dict]]:
    """A refused pause is a 409 (the case's state or limits) or a 422 naming the field."""
    def guarded(case, now):
        try:
            return change(case, now)
        except pausing.PauseRefused as exc:
            if exc.field:
                raise BadField(exc.field, exc.message) from None
            raise WrongState(exc.message) from None
    return guarded


def can_see(principal: Principal, case: dict) -> bool:
    if not principal.sees(case["township"]):
        return False
    if principal.role in STAFF:
        return True
    return principal.role == "lead" and bool(principal.unit_id) and principal.unit_id == case.get("unit_id")


def holds(principal: Principal, case: dict) -> bool:
    if principal.role == "lead":
        return can_see(principal, case)
    return principal.role in STAFF and principal.sees(case["township"]) and case.get("level") == "township"


def actor_of(principal: Principal) -> Actor:
    return Actor(principal.name or principal.unit_id or principal.role, principal.role)


class CaseDesk:
    def __init__(self, org: OrgRepository, cases: Aggregates, policies: Policies, escalator: Escalator,
                 clock: Clock):
        self.org = org
        self.cases = cases
        self.policies = policies
        self.escalator = escalator
        self.clock = clock

    # -- reading --------------------------------------------------------------------------------
    def read(self, principal: Principal, case_id: str) -> dict:
        return views.detail(self._visible(principal, case_id), self.clock.now())

    def held(self, principal: Principal, show: str, limit: int, skip: int) -> list[dict]:
        """The cases the caller's post holds (staff: those at township level)."""
        if principal.role == "lead":
            units = [principal.unit_id] if principal.unit_id else []
        else:
            units = [township_unit_id(t) for t in principal.townships]
        where = {"unit_id": {"$in": units}}
        if show in ("open", "due_soon", "overdue", "paused"):
            where["status"] = {"$in": list(OPEN_STATUSES)}
        elif show in ("resolved", "referred"):
            where["status"] = show
        found = self.cases.collection.find(where, sort=[("created_at", -1)], limit=MAX_SCAN)
        docs = [d for d in found if holds(principal, d)]
        return self._page(docs, show, limit, skip)

    def of_township(self, township: str, *, show: str, level: str | None, unit_id: str | None,
                    unanswered_only: bool, limit: int, skip: int) -> list[dict]:
        where: dict = {"township": township}
        if show in ("open", "due_soon", "overdue", "paused"):
            where["status"] = {"$in": list(OPEN_STATUSES)}
        elif show in ("resolved", "referred"):
            where["status"] = show
        if level:
            where["level"] = level
        if unit_id:
            where["unit_id"] = unit_id
        if show in ("due_soon", "overdue", "paused") or unanswered_only:
            docs = self.cases.collection.find(where, sort=[("created_at", -1)], limit=MAX_SCAN)
            docs = [d for d in docs if not unanswered_only or views.unanswered(d)]
            return self._page(docs, show, limit, skip)
        docs = self.cases.collection.find(where, sort=[("created_at", -1)], limit=limit, skip=skip)
        now = self.clock.now()
        return [views.summary(d, now) for d in docs]

    def _page(self, docs: list[dict], show: str, limit: int, skip: int) -> list[dict]:
        now = self.clock.now()
        shown = [v for v in (views.summary(d, now) for d in docs) if views.shown(v, show)]
        return views.ordered(shown)[skip:skip + limit]

    # -- the holder's actions -------------------------------------------------------------------
    def accept(self, principal: Principal, case_id: str, note: str | None) -> dict:
        return self._as_holder(principal, case_id, "接单",
                               lambda c, now: transitions.accept(c, actor_of(principal), now, note))

    def progress(self, principal: Principal, case_id: str, note: str) -> dict:
        return self._as_holder(principal, case_id, "填报进展",
                               lambda c, now: transitions.progress(c, actor_of(principal), now, note))

    def resolve(self, principal: Principal, case_id: str, note: str, dry_run: bool = False,
                photos: list[str] | None = None) -> dict:
        """办结. ``dry_run``: every check, on a copy, nothing stored — what a client asks before it
        stores anything else of the same 办结 (its photos, kept by intake), so a refusal stores nothing.
        ``photos``: the addresses intake answered those uploads with; the 办结 keeps them."""
        return self._as_holder(principal, case_id, "办结",
                               lambda c, now: transitions.resolve(c, actor_of(principal), now, note, photos), dry_run)

    def escalate(self, principal: Principal, case_id: str, reason: str, note: str | None) -> dict:
        text = transitions.ESCALATION_REASONS[reason]
        return self._as_holder(principal, case_id, "上报", lambda c, now: self.escalator.escalate(
            c, now, reason=text, actor=actor_of(principal), note=note))

    def answer(self, principal: Principal, case_id: str, supervision_id: str, note: str) -> dict:
        def change(case, now):
            try:
                return transitions.answer_supervision(case, supervision_id, actor_of(principal), now, note)
            except LookupError:
                raise CaseNotVisible(supervision_id) from None
        return self._as_holder(principal, case_id, "答复督办", change)

    def pause(self, principal: Principal, case_id: str, reason: str, note: str, until) -> dict:
        """挂起: the clock stops until the resident answers, the holder resumes, or the cap (pausing.py)."""
        case = self._visible(principal, case_id)
        limits = sla.pause_limits(self.policies.get(case["township"]), case["tier"])
        return self._as_holder(principal, case_id, "挂起", _refusals(lambda c, now: pausing.pause(
            c, limits, actor_of(principal), now, reason=reason, note=note, until=until)))

    def resume(self, principal: Principal, case_id: str, note: str | None) -> dict:
        return self._as_holder(principal, case_id, "恢复办理", _refusals(lambda c, now: pausing.resume(
            c, actor_of(principal), now, why="holder", note=note)))

    # -- the township's actions -----------------------------------------------------------------
    def reassign(self, principal: Principal, case_id: str, unit_id: str, note: str | None) -> dict:
        case = self._visible(principal, case_id)
        unit = self.org.unit(unit_id)
        if unit is None or unit["township"] != case["township"]:
            raise BadField("unit_id", "本镇(街道)没有这个单位")
        if not has_lead(unit):
            raise BadField("unit_id", f"该{POST_TITLES[unit['level']]}岗位空缺，无人接单")
        policy = self.policies.get(case["township"])
        return self._store(principal, case_id, lambda c, now: transitions.reassign(
            c, unit, policy, actor_of(principal), now, note))

    def recategorise(self, principal: Principal, case_id: str, category: str | None, tier: str | None,
                     note: str | None) -> dict:
        case = self._visible(principal, case_id)
        policy = self.policies.get(case["township"])
        return self._store(principal, case_id, lambda c, now: transitions.recategorise(
            c, policy, actor_of(principal), now, category=category, tier=tier, note=note))

    def supervise(self, principal: Principal, case_id: str, note: str) -> dict:
        return self._store(principal, case_id,
                              lambda c, now: transitions.supervise(c, actor_of(principal), now, note))

    # -- plumbing -------------------------------------------------------------------------------
    def _visible(self, principal: Principal, case_id: str) -> dict:
        case = self.cases.get(case_id)
        if case is None or not can_see(principal, case):
            raise CaseNotVisible(case_id)
        return case

    def _as_holder(self, principal: Principal, case_id: str, action: str,
                   change: Callable[[dict, object], list[dict]], dry_run: bool = False) -> dict:
        def guarded(case, now):
            if case["status"] in CLOSED_STATUSES:  # say why before saying whose it is
                raise WrongState(f"工单{STATUS_TEXT[case['status']]}，不能{action}")
            if not holds(principal, case):
                raise NotHolder(f"工单当前在{UNIT_NAMES.get(case['level'], case['level'])}办理，"
                                f"只有经办人可以{action}")
            return change(case, now)
        return self._store(principal, case_id, guarded, dry_run)

    def _store(self, principal: Principal, case_id: str, change, dry_run: bool = False) -> dict:
        """Access is checked again on the stored case inside the compare-and-set: the holder may
        have changed (a timer escalated it) since the caller last looked. A dry run makes the same
        change on a copy of the stored case and keeps nothing: it answers (or raises) as the real one would."""
        now = self.clock.now()

        def guarded(case: dict):
            if not can_see(principal, case):
                raise CaseNotVisible(case_id)
            return change(case, now)

        if dry_run:
            case = self.cases.get(case_id)
            if case is None:
                raise CaseNotVisible(case_id)
            case = copy.deepcopy(case)
            guarded(case)
            return views.detail(case, now)

        try:
            stored = self.cases.mutate(case_id, guarded)
        except NotFound:
            raise CaseNotVisible(case_id) from None
        # After an escalation a lead no longer holds the case; it still gets the result of its action.
        return views.detail(stored, now)
