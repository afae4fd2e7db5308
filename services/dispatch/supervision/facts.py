"""Per-case derived fields, written with the case at every transition so the database can aggregate.

``CaseFacts`` is the cases repository (an ``Aggregates``) that runs ``derive`` on the document
inside the same compare-and-set as the change itself: whatever changes a case — a lead's action, a
timer, a department's sign-off, a rating — leaves its figures consistent with its timeline. Every
flag is stored as 0/1 (MongoDB's $sum ignores booleans) and every duration in seconds.

A case also carries ``holds``: one entry per stint with a holder (a step of the chain: 邻长, 组长,
…, a department), which is where figures per lead, per level and per department come from. The
supervision projector copies them into the ``stints`` collection (one row each) when the case's
events come back (see projector.py).

Definitions (case level):

- received: every case opened in the period (``created_at``).
- accepted_on_time (响应): 1 when the case was accepted with no acceptance deadline missed before
  that; 0 once a deadline was missed (or the acceptance came late); null while still pending. The
  response rate is over the decided cases (``accepted_on_time`` not null).
- resolved (解决): 1 once resolved (by a lead, the township or a department's sign-off).
- resolved_within_2d: resolved within 48 hours of the case being opened (seeds: "2天解决到位"), not
  counting the time the case was paused (挂起, waiting for the resident or an outside event).
- paused_s: seconds the case has been paused in all (a running pause counted up to now); shown
  beside time to solve, which stays wall-clock time. paused_now: 1 while a pause runs.
- satisfied (满意): from ``report.rated``: 1 satisfied, 0 not; null until rated.
- disputes_mediated (调解矛盾纠纷): a ``dispute`` case resolved. hazards_found (排查安全隐患): a
  ``hazard`` case received. micro_services (微服务): any other category resolved by a 邻长 or 组长.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Callable, Iterable

from shared.domain.levels import LEAD_LEVELS  # the 三长: the people who hold points and cards
from shared.aggregates import Aggregates
from shared.clock import iso, parse_iso
from shared.domain.ids import short_hash
from shared.domain.localtime import local_zone
from shared.storage import Index, StorageError

log = logging.getLogger(__name__)

TWO_DAYS = timedelta(days=2)
KIND_OF_CATEGORY = {"dispute": "dispute", "hazard": "hazard"}  # everything else: "service"

# The figures' columns, and covering indexes led by the scope and the time range: a figure query
# reads index entries only, never the documents (MongoDB: covered $group; SQLite: covering index).
FIGURE_VALUES = ["accepted_on_time", "time_to_accept_s", "resolved", "time_to_resolve_s", "resolved_within_2d",
                 "rated", "satisfied", "escalations", "breach_count", "breaches_accept", "breaches_resolve",
                 "deadline", "disputes_mediated", "hazards_found", "micro_services", "paused_s", "paused_now"]
CASE_GROUPS = ["village_id", "category", "week"]
CASE_FIGURE_INDEXES = [Index.on("township", "created_at", *CASE_GROUPS, *FIGURE_VALUES),
                       Index.on("city", "created_at", "township", *FIGURE_VALUES),
                       # "Overdue now" is counted at query time over the rows with a deadline only
                       # (open cases; a partial index on SQLite), the rest comes from the rollups.
                       Index.on("township", "deadline", "created_at", *CASE_GROUPS, present="deadline"),
                       Index.on("city", "deadline", "created_at", "township", present="deadline")]
CASE_FIGURE_COLUMNS = ["city", "kind", *CASE_GROUPS, *FIGURE_VALUES]


def week_of(at: str) -> str:
    """The local (Beijing time) Monday of the week, as YYYY-MM-DD: the board's trend bucket."""
    return _week_of(at, local_zone())


@lru_cache(maxsize=4096)  # every change of a case re-derives it from the same created_at (issue 16)
def _week_of(at: str, zone) -> str:
    day = parse_iso(at).astimezone(zone).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def quarter_of(at: str) -> str:
    local = parse_iso(at).astimezone(local_zone())
    return f"{local.year}Q{(local.month - 1) // 3 + 1}"


def lead_key(level: str, unit_id: str | None, lead_name: str | None) -> str | None:
    """A person in a post: the same post with a new holder is another lead (points follow people)."""
    if not unit_id:
        return None
    if level in LEAD_LEVELS:
        return "l" + short_hash(unit_id, lead_name or "")
    return unit_id


def _secs(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    return int((parse_iso(end) - parse_iso(start)).total_seconds())


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(bool(value))


def current_deadline(case: dict) -> str | None:
    status = case.get("status")
    if status == "accepted" and case.get("pause"):
        return None  # paused: no deadline runs, so it is never "overdue now" (pausing.py)
    if status == "assigned":
        return case.get("accept_due")
    if status == "accepted":
        return case.get("resolve_due")
    return None


# -- holds (one per stint at a holder) ---------------------------------------------------------------

def _open_hold(case: dict, now: str) -> dict:
    assignee = case.get("assignee") or {}
    level = case.get("level") or assignee.get("level")
    return {"step": case.get("step"), "level": level, "unit_id": case.get("unit_id"),
            "unit_name": assignee.get("unit_name"), "lead_name": assignee.get("lead_name"),
            "assigned_at": case.get("referred_at") if level == "department" else case.get("assigned_at") or now,
            "accept_due": case.get("accept_due") if level != "department" else None,
            "resolve_due": case.get("resolve_due") if level != "department" else None,
            "accepted_at": None, "resolved_at": None, "ended_at": None, "outcome": "open"}


def _close_hold(hold: dict, case: dict, now: str) -> None:
    hold["ended_at"] = now
    if hold["outcome"] != "open":
        return
    moves = [e for e in case.get("timeline", []) if e["type"] in ("escalated", "referred", "reassigned")]
    last = moves[-1] if moves else {}
    if last.get("type") == "reassigned":
        hold["outcome"] = "reassigned"
    elif last.get("actor") == "system":
        hold["outcome"] = "breach_escalated"
    else:
        hold["outcome"] = "escalated"


def _refresh_hold(hold: dict, case: dict, current: bool) -> None:
    if current:
        if case.get("accepted_at") and not hold["accepted_at"] and hold["level"] != "department":
            hold["accepted_at"] = case["accepted_at"]
        if case.get("status") == "resolved" and not hold["resolved_at"]:
            hold["resolved_at"] = case.get("resolved_at")
            hold["outcome"] = "resolved"
        if hold["level"] == "department":
            dept = case.get("department") or {}
            signed = case.get("signed_off") or {}
            dept_id = signed.get("department_id") or dept.get("department_id")
            if dept_id:
                hold["unit_id"] = dept_id
                hold["unit_name"] = hold["lead_name"] = signed.get("department_name") or dept.get("department_name")
            hold["accept_due"] = dept.get("accept_due") or hold.get("accept_due")
            hold["resolve_due"] = dept.get("due_at") or hold.get("resolve_due")
            if dept.get("accepted_at") and not hold["accepted_at"]:
                hold["accepted_at"] = dept["accepted_at"]
    breaches = [b for b in case.get("breaches", []) if b.get("step") == hold["step"]]
    if hold["level"] == "department":
        breaches = breaches + list((case.get("department") or {}).get("breaches", []))
    hold["breaches_accept"] = sum(1 for b in breaches if b.get("kind") == "accept")
    hold["breaches_resolve"] = sum(1 for b in breaches if b.get("kind") != "accept")
    end = hold["ended_at"] or "9999"
    sups = [s for s in case.get("supervisions", []) if hold["assigned_at"] <= s["at"] < end]
    hold["supervisions"] = len(sups)
    hold["supervisions_unanswered"] = sum(1 for s in sups if not s.get("answered_at"))
    accepted_late = bool(hold["accepted_at"] and hold["accept_due"] and hold["accepted_at"] > hold["accept_due"])
    if hold["breaches_accept"] or accepted_late:
        hold["accepted_on_time"] = 0
    elif hold["accepted_at"]:
        hold["accepted_on_time"] = 1
    else:
        hold["accepted_on_time"] = None  # pending, or passed on without accepting: not this holder's to answer
    resolved_late = bool(hold["resolved_at"] and hold["resolve_due"] and hold["resolved_at"] > hold["resolve_due"])
    if hold["breaches_resolve"] or resolved_late:
        hold["resolved_on_time"] = 0
    elif hold["resolved_at"]:
        hold["resolved_on_time"] = 1
    else:
        hold["resolved_on_time"] = None
    hold["deadline"] = current_deadline(case) if current else None


def update_holds(case: dict, now: str) -> None:
    holds = case.setdefault("holds", [])
    if not holds or holds[-1]["step"] != case.get("step"):
        if holds:
            _close_hold(holds[-1], case, now)
            _refresh_hold(holds[-1], case, current=False)
        holds.append(_open_hold(case, now))
    _refresh_hold(holds[-1], case, current=True)


# -- the case's own figures ------------------------------------------------------------------------

def paused_seconds(case: dict, now: datetime, step: int | None = None) -> float:
    """Calendar seconds the case was paused (at one step of the chain when given), a running pause to now."""
    done = sum(p.get("seconds", 0.0) for p in case.get("pauses") or () if step is None or p.get("step") == step)
    running = case.get("pause")
    if running and case.get("status") == "accepted" and (step is None or running.get("step") == step):
        done += max((now - parse_iso(running["since"])).total_seconds(), 0.0)
    return done


def derive(case: dict, now: datetime, village_of: Callable[[str], str | None] | None = None) -> dict:
    """Recomputes every derived field from the case as it is now; idempotent."""
    at = iso(now)
    update_holds(case, at)
    holds = case["holds"]
    created = case.get("created_at") or at
    if "village_id" not in case or (case["village_id"] is None and case.get("neighbourhood_id") and village_of):
        case["village_id"] = village_of(case["neighbourhood_id"]) if (village_of and case.get("neighbourhood_id")) else None
    case["city"] = case.get("city") or case["township"][:6]
    case["week"] = week_of(created)
    case["kind"] = KIND_OF_CATEGORY.get(case.get("category"), "service")
    first_accept = next((h for h in holds if h["accepted_at"]), None)
    accept_missed = any(h["breaches_accept"] or h["accepted_on_time"] == 0
                        for h in holds[:holds.index(first_accept) + 1 if first_accept else len(holds)])
    if accept_missed:
        case["accepted_on_time"] = 0
    else:
        case["accepted_on_time"] = 1 if first_accept else None
    case["time_to_accept_s"] = _secs(created, first_accept["accepted_at"]) if first_accept else None
    resolved = case.get("status") == "resolved" and bool(case.get("resolved_at"))
    case["resolved"] = int(resolved)
    case["time_to_resolve_s"] = _secs(created, case["resolved_at"]) if resolved else None
    paused = paused_seconds(case, now)
    case["paused_s"] = int(paused)
    case["paused_now"] = int(bool(case.get("pause")) and case.get("status") == "accepted")
    case["resolved_within_2d"] = int(resolved and (parse_iso(case["resolved_at"]) - parse_iso(created)
                                                   - timedelta(seconds=paused)) <= TWO_DAYS)
    rating = case.get("rating") or {}
    case["rated"] = int(rating.get("satisfied") is not None)
    case["satisfied"] = _flag(rating.get("satisfied"))
    case["breach_count"] = sum(h["breaches_accept"] + h["breaches_resolve"] for h in holds)
    case["breaches_accept"] = sum(h["breaches_accept"] for h in holds)
    case["breaches_resolve"] = sum(h["breaches_resolve"] for h in holds)
    case["deadline"] = current_deadline(case)
    resolver = holds[-1] if resolved else None
    case["disputes_mediated"] = int(resolved and case["kind"] == "dispute")
    case["hazards_found"] = int(case["kind"] == "hazard")
    case["micro_services"] = int(bool(resolved and case["kind"] == "service" and resolver
                                      and resolver["level"] in ("neighbourhood", "group")))
    return case


def stint_rows(case: dict) -> list[dict]:
    """The case's holds as rows of the ``stints`` collection (figures per lead, level, department)."""
    rows = []
    holds = case.get("holds") or []
    for i, hold in enumerate(holds):
        resolver = hold["outcome"] == "resolved"
        rows.append({
            "_id": f"{case['_id']}:{hold['step']}", "township": case["township"], "city": case.get("city"),
            "village_id": case.get("village_id"), "case_id": case["_id"], "category": case.get("category"),
            "kind": case.get("kind"), "step": hold["step"], "level": hold["level"], "unit_id": hold["unit_id"],
            "unit_name": hold["unit_name"], "lead_name": hold["lead_name"],
            "lead_key": lead_key(hold["level"], hold["unit_id"], hold["lead_name"]),
            "assigned_at": hold["assigned_at"], "week": week_of(hold["assigned_at"]), "ended_at": hold["ended_at"],
            "outcome": hold["outcome"], "accepted_at": hold["accepted_at"], "resolved_at": hold["resolved_at"],
            "accepted_on_time": hold["accepted_on_time"], "time_to_accept_s": _secs(hold["assigned_at"], hold["accepted_at"]),
            "resolved": int(resolver), "resolved_on_time": hold["resolved_on_time"],
            "time_to_resolve_s": _secs(hold["assigned_at"], hold["resolved_at"]) if resolver else None,
            "resolved_within_2d": case.get("resolved_within_2d", 0) if resolver else 0,
            "rated": case.get("rated", 0) if resolver else 0,
            "satisfied": case.get("satisfied") if resolver else None,
            "escalations": int(hold["outcome"] == "escalated"),
            "breached_away": int(hold["outcome"] == "breach_escalated"),
            "breach_count": hold["breaches_accept"] + hold["breaches_resolve"],
            "breaches_accept": hold["breaches_accept"], "breaches_resolve": hold["breaches_resolve"],
            "supervisions": hold["supervisions"], "supervisions_unanswered": hold["supervisions_unanswered"],
            "deadline": hold["deadline"],
            "disputes_mediated": case.get("disputes_mediated", 0) if resolver else 0,
            "hazards_found": case.get("hazards_found", 0) if i == 0 else 0,
            "micro_services": case.get("micro_services", 0) if resolver else 0,
            "paused_s": int(sum(p.get("seconds", 0.0) for p in case.get("pauses") or ()
                                if p.get("step") == hold["step"])),
            "paused_now": int(bool(case.get("pause")) and hold is holds[-1] and case.get("status") == "accepted"),
        })
    return rows


STINT_GROUPS = ["level", "lead_key", "unit_id", "unit_name", "lead_name"]
STINT_VALUES = [*FIGURE_VALUES, "breached_away", "supervisions"]
STINT_INDEXES = [Index.on("township", "assigned_at", *STINT_GROUPS, *STINT_VALUES), Index.on("case_id"),
                 Index.on("township", "lead_key"),
                 Index.on("township", "deadline", "assigned_at", *STINT_GROUPS, present="deadline")]
STINT_COLUMNS = [*STINT_GROUPS, *STINT_VALUES, "village_id", "category", "kind", "week", "resolved_on_time",
                 "supervisions_unanswered"]


ROLLED_FIELDS = ["township", "created_at", *CASE_GROUPS, *FIGURE_VALUES]


def rolled_view(case: dict) -> tuple:
    """What of a case the rollups count (rollups.py): when it changes, its day is recomputed."""
    return tuple(case.get(f) for f in ROLLED_FIELDS)


class CaseFacts(Aggregates):
    """The cases repository: every add and every compare-and-set re-derives the case's figures, and
    a change to them recomputes the rollups of the day the case was received (``rollups``, set by
    Supervision)."""

    def __init__(self, collection, clock, wake=None, village_of: Callable[[str], str | None] | None = None):
        super().__init__(collection, clock, wake)
        self.village_of = village_of
        self.rollups = None

    def add(self, doc: dict, events: Iterable[dict] = ()) -> dict:
        doc = derive(dict(doc), self.clock.now(), self.village_of)
        stored = super().add(doc, events)
        self._roll([stored])
        return stored

    def mutate(self, doc_id: str, change, *, applying: str | None = None) -> dict:
        before: list[tuple] = []

        def deriving(doc: dict):
            before[:] = [rolled_view(doc)]
            events = change(doc)
            derive(doc, self.clock.now(), self.village_of)
            return events
        stored = super().mutate(doc_id, deriving, applying=applying)
        if not before or rolled_view(stored) != before[0]:
            rolls = getattr(self._batch, "rolls", None)
            if rolls is not None:  # inside mutate_claimed: not written yet, marked after the claim's write
                rolls.append(stored)
            else:
                self._roll([stored])
        return stored

    def mutate_claimed(self, claimed: list[dict], work) -> dict[str, Exception]:
        """A claim's changes written together (Aggregates), then the days they changed marked once
        each, after the write: a burst of breaches in one township-day was one mark (a read and a
        write, each its own commit) per case, a fifth of the sweeper's time (issue 16)."""
        self._batch.rolls = []
        try:
            failed = super().mutate_claimed(claimed, work)
        finally:
            rolls, self._batch.rolls = self._batch.rolls, None
        self._roll([case for case in rolls if case["_id"] not in failed])
        return failed

    def _roll(self, cases: list[dict]) -> None:
        """The rollups follow the write; the write stands even when they cannot (the database went
        away between the two): the projector recomputes the day again when the case's event comes back."""
        if self.rollups is None or not cases:
            return
        try:
            self.rollups.touch_cases(cases)
        except StorageError as exc:
            log.warning("figure rollups of %d case(s) (%s …) left to their events: %s", len(cases),
                        cases[0].get("_id"), exc)
