"""The points ledger (积分台账) and the projector that feeds it from dispatch's own events.

Choice: dispatch consumes its own ``case.*`` and ``sla.*`` events (and ``report.rated``,
``followup.completed``, ``department.assigned|accepted|sla_breached``) rather than writing entries
inside the transitions. The case write and its events are already atomic (the outbox), so an event
that comes back is proof the change was stored; the ledger entry it causes is written with an id
derived from the event id, the rule and the lead (``derived_id(cause, rule, lead)``), so a
redelivered event lands on the same entry and never counts twice. The same pass copies the case's
holds into the ``stints`` collection (figures per lead, level, department).

Rules (each a code of the township's 正负面清单, rules.py):

- accept_on_time — ``case.accepted`` by a 三长 within that level's acceptance limit.
- resolve_on_time — ``case.resolved`` by a 三长 within that level's resolve limit.
- breach_accept / breach_resolve — ``sla.breached``, against the holder that let the time run out.
- rated_satisfied / rated_unsatisfied — ``report.rated`` (or ``followup.completed`` carrying a
  verdict), against the 三长 who resolved the case.
- supervision_unanswered — a ``case.supervised`` note still unanswered after the rule set's
  ``supervision_answer_hours`` (a timer per supervision, swept like SLA timers).
- visit_logged / visit_overdue — visits.py (caused by the visit, or by the household's missed due
  time).
"""
from __future__ import annotations

import copy
from datetime import timedelta

from shared.aggregates import Aggregates, NotFound, Unchanged
from shared.clock import Clock, iso, parse_iso
from shared.domain.ids import case_id_for, derived_id
from shared.domain.levels import LEAD_LEVELS
from shared.storage import DuplicateKey, Index, Store

from ..transitions import BREACH_REASONS
from .facts import STINT_COLUMNS, STINT_INDEXES, derive, lead_key, quarter_of, stint_rows, week_of
from .rules import Rules

LEDGER_INDEXES = [Index.on("township", "at"), Index.on("township", "lead_key"), Index.on("township", "quarter"),
                  Index.on("case_id")]
LEDGER_COLUMNS = ["points", "rule", "unit_id", "unit_name", "lead_name", "level"]
SATISFIED_WORDS = {"满意", "非常满意", "基本满意", "satisfied", "very_satisfied", "good", "yes"}
UNSATISFIED_WORDS = {"不满意", "非常不满意", "unsatisfied", "dissatisfied", "very_unsatisfied", "bad", "no"}


def satisfaction_of(payload: dict, min_score: int = 4) -> bool | None:
    """A rating's verdict, read tolerantly: a ``satisfied`` flag, a 1–5 score, or a word."""
    if isinstance(payload.get("satisfied"), bool):
        return payload["satisfied"]
    for key in ("score", "stars", "rating"):
        value = payload.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value >= min_score
    for key in ("rating", "verdict", "result", "satisfaction"):
        value = payload.get(key)
        if isinstance(value, str):
            if value.lower() in UNSATISFIED_WORDS:
                return False
            if value.lower() in SATISFIED_WORDS:
                return True
    return None


class Ledger:
    def __init__(self, store: Store, rules: Rules):
        self.entries = store.collection("ledger", LEDGER_INDEXES, columns=LEDGER_COLUMNS)
        self.rules = rules

    def record(self, township: str, rule: str, *, cause: str, cause_type: str, at: str, level: str,
               unit_id: str | None, unit_name: str | None, lead_name: str | None, case_id: str | None = None,
               note: str | None = None) -> dict | None:
        """One entry per (cause, rule, lead); a second call for the same ones is a no-op."""
        if level not in LEAD_LEVELS or not unit_id:
            return None  # village committees, township staff and departments hold no points
        found = self.rules.points(township, rule)
        if found is None:
            return None
        name, points = found
        key = lead_key(level, unit_id, lead_name)
        entry = {"_id": derived_id("ledger", cause, rule, key), "township": township, "rule": rule,
                 "rule_name": name, "points": points, "lead_key": key, "unit_id": unit_id, "unit_name": unit_name,
                 "lead_name": lead_name, "level": level, "case_id": case_id, "cause": cause,
                 "cause_type": cause_type, "at": at, "quarter": quarter_of(at), "week": week_of(at), "note": note}
        try:
            self.entries.insert(entry)
        except DuplicateKey:
            return self.entries.get(entry["_id"])
        return entry

    def list(self, township: str, *, lead: str | None = None, since: str | None = None, until: str | None = None,
             limit: int = 200) -> list[dict]:
        if lead:
            docs = self.entries.find({"township": township, "lead_key": lead}, limit=5000)
            docs = [d for d in docs if (not since or d["at"] >= since) and (not until or d["at"] < until)]
            return sorted(docs, key=lambda d: d["at"], reverse=True)[:limit]
        where = {"township": township, "at": {k: v for k, v in (("$gte", since), ("$lt", until)) if v}}
        if not where["at"]:
            del where["at"]
        return self.entries.find(where, sort=[("at", -1)], limit=limit)


class Projector:
    """dispatch's handlers for its own events: stints, ratings, department facts and the ledger."""

    def __init__(self, store: Store, cases: Aggregates, ledger: Ledger, rules: Rules, clock: Clock):
        self.cases = cases
        self.ledger = ledger
        self.rules = rules
        self.clock = clock
        self.stints = store.collection("stints", STINT_INDEXES, columns=STINT_COLUMNS)
        self.rollups = None  # set by Supervision (rollups.py)
        self.watches = store.collection("supervision_watches", [Index.on("due"), Index.on("case_id")])

    def handlers(self) -> dict:
        on_case = self.on_case_event
        return {
            # case.assigned is not here: a new case is projected as it opens (``project_new``).
            **{t: on_case for t in ("case.accepted", "case.progress", "case.supervised",
                                    "case.escalated", "case.reassigned", "case.resolved", "case.referred",
                                    "case.updated", "sla.warning", "sla.breached", "case.paused", "case.resumed")},
            "report.rated": self.on_rated, "followup.completed": self.on_rated,
            "department.assigned": self.on_department, "department.accepted": self.on_department,
            "department.sla_breached": self.on_department,
        }

    # -- projection -------------------------------------------------------------------------------
    def project(self, case: dict, heal: bool = False) -> list[dict]:
        """Copies the case's holds into ``stints`` and recomputes the rollups of the days whose
        stints changed; ``heal`` recomputes the case's days even when nothing changed (an event
        handled again after a crash between the write and its rollups)."""
        if not case.get("holds"):  # stored before supervision existed: derive a copy
            case = derive(copy.deepcopy(case), self.clock.now())
        rows = stint_rows(case)
        changed = []
        for row in rows:
            current = self.stints.get(row["_id"])
            if current is None or {k: v for k, v in current.items() if k != "version"} != row:
                self.stints.upsert(row)
                changed.append(row["assigned_at"])
        if self.rollups is not None:
            if heal:
                self.rollups.touch_case(case)
            self.rollups.touch_stints(case["township"], [r["assigned_at"] for r in rows] if heal else changed)
        return rows

    def project_new(self, case: dict) -> None:
        """A newly opened case (DispatchHandlers.on_open), in the transaction that stores it: its
        stints, and its days' rollups (the case's own day is marked by CaseFacts.add). A stint's id
        is the case's and its step: a case inserted just now has none, so its rows are inserted
        without looking for them first (one read fewer a case); on a redelivery, whose case exists
        and may have moved on, the first row is there and ``project`` brings them all up to date."""
        rows = stint_rows(case)
        try:
            for row in rows:
                self.stints.insert(row)
        except DuplicateKey:
            self.project(case)
            return
        if self.rollups is not None:
            self.rollups.touch_stints(case["township"], [r["assigned_at"] for r in rows])

    # -- handlers ---------------------------------------------------------------------------------
    def on_case_event(self, event: dict) -> None:
        payload = event["payload"]
        case = self.cases.get(payload["case_id"])
        if case is None:
            return
        self.project(case, heal=True)
        kind, at, township = event["type"], event["occurred_at"], event["township"]
        holds = case.get("holds") or []
        if kind == "case.accepted":
            hold = next((h for h in holds if h["accepted_at"] == at), None)
            if hold and hold["accepted_on_time"] == 1:
                self._credit(event, case, hold, "accept_on_time")
        elif kind == "case.resolved":
            hold = next((h for h in holds if h["outcome"] == "resolved"), None)
            if hold and hold["resolved_on_time"] == 1:
                self._credit(event, case, hold, "resolve_on_time")
        elif kind == "sla.breached":
            who = payload["assignee"]
            rule = "breach_accept" if payload.get("reason") == BREACH_REASONS["accept"] else "breach_resolve"
            self.ledger.record(township, rule, cause=event["id"], cause_type=kind, at=at, level=who["level"],
                               unit_id=who.get("unit_id"), unit_name=who.get("unit_name"),
                               lead_name=who.get("lead_name"), case_id=case["_id"], note=payload.get("reason"))
        elif kind == "case.supervised":
            self._watch(event, case)

    def _credit(self, event: dict, case: dict, hold: dict, rule: str, note: str | None = None) -> None:
        self.ledger.record(event["township"], rule, cause=event["id"], cause_type=event["type"],
                           at=event["occurred_at"], level=hold["level"], unit_id=hold["unit_id"],
                           unit_name=hold["unit_name"], lead_name=hold["lead_name"], case_id=case["_id"], note=note)

    def on_rated(self, event: dict) -> None:
        """Stores the resident's verdict on the case (满意率), then credits or debits its resolver."""
        payload = event["payload"]
        case_id = payload.get("case_id") or (case_id_for(payload["report_id"]) if payload.get("report_id") else None)
        if not case_id:
            return
        min_score = self.rules.get(event["township"]).get("satisfied_min_score", 4)
        # A resident following the case from a merged report rates it too; the case's own report's
        # verdict is the one that counts (满意率, points), once per resolution.
        verdict = None if payload.get("linked") else satisfaction_of(payload, min_score)

        def change(case: dict):
            if verdict is None:
                raise Unchanged
            case["rating"] = {"satisfied": verdict, "at": event["occurred_at"], "event_id": event["id"],
                              "score": payload.get("score") if isinstance(payload.get("score"), (int, float)) else None,
                              "comment": payload.get("comment")}
            return ()

        try:
            case = self.cases.mutate(case_id, change, applying=event["id"])
        except NotFound:
            return
        self.project(case, heal=True)
        if verdict is None:
            return
        # The latest resolution is the one rated (a reopened case is resolved again by someone).
        hold = next((h for h in reversed(case.get("holds", [])) if h["outcome"] == "resolved"), None)
        if hold:
            self._credit(event, case, hold, "rated_satisfied" if verdict else "rated_unsatisfied",
                         note=payload.get("comment"))

    def on_department(self, event: dict) -> None:
        """The lead department's acceptance, deadline and breaches, for figures per department."""
        payload = event["payload"]
        if payload.get("role") not in (None, "lead"):
            return

        def change(case: dict):
            dept = case.setdefault("department", {})
            if event["type"] == "department.assigned":
                dept.update(department_id=payload["department_id"], department_name=payload["department_name"],
                            assigned_at=event["occurred_at"], accept_due=payload.get("accept_due"),
                            due_at=payload.get("due_at"))
            elif event["type"] == "department.accepted":
                dept.setdefault("accepted_at", event["occurred_at"])
            else:
                dept.setdefault("breaches", []).append({"kind": payload.get("kind") or "finish",
                                                        "at": event["occurred_at"]})
            return ()

        try:
            case = self.cases.mutate(payload["case_id"], change, applying=event["id"])
        except NotFound:
            return
        self.project(case, heal=True)

    # -- supervision answer timers ----------------------------------------------------------------
    def _watch(self, event: dict, case: dict) -> None:
        at = event["occurred_at"]
        supervision = next((s for s in case.get("supervisions", []) if s["at"] == at), None)
        if supervision is None:
            return
        hours = self.rules.get(case["township"])["supervision_answer_hours"]
        due = iso(parse_iso(at) + timedelta(hours=hours))
        hold = next((h for h in reversed(case.get("holds", [])) if h["assigned_at"] <= at), None) or {}
        try:
            self.watches.insert({"_id": supervision["id"], "case_id": case["_id"], "township": case["township"],
                                 "due": due, "answer_due": due, "event_id": event["id"], "at": at,
                                 "level": hold.get("level"), "unit_id": hold.get("unit_id"),
                                 "unit_name": hold.get("unit_name"), "lead_name": hold.get("lead_name")})
        except DuplicateKey:
            pass

    def fire_watch(self, watch: dict) -> None:
        """DueSweeper's work: a supervision still unanswered at its answer time costs its holder."""
        case = self.cases.get(watch["case_id"])
        supervision = next((s for s in (case or {}).get("supervisions", []) if s["id"] == watch["_id"]), None)
        if supervision and (not supervision.get("answered_at") or supervision["answered_at"] > watch["answer_due"]):
            self.ledger.record(watch["township"], "supervision_unanswered", cause=watch["event_id"],
                               cause_type="case.supervised", at=watch["answer_due"], level=watch["level"],
                               unit_id=watch["unit_id"], unit_name=watch["unit_name"], lead_name=watch["lead_name"],
                               case_id=watch["case_id"], note=supervision.get("note"))
        self.watches.delete(watch["_id"])
