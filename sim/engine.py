"""The discrete-event loop: scheduled people's actions in a heap, the virtual clock moved to the
next action or the next due timer, whichever is first; after each, the system is stepped (events
relayed and handled, timers fired) and the events it published tell the actors what to do next."""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import actors
from .setup import Org
from .system import SimSystem, SystemAnswer

LEVELS = ("neighbourhood", "group", "area", "village", "township")
HOLDING_EVENTS = ("case.assigned", "case.escalated", "case.reassigned", "case.reopened")


@dataclass
class Tracked:
    no: int
    township: str
    report_id: str
    tracking_no: str
    resident: dict
    case_id: str | None = None
    epoch: int = 0
    level: str | None = None
    unit_id: str | None = None
    reopens: int = 0
    resolutions: int = 0


@dataclass
class Tally:
    reports: int = 0
    instant: int = 0
    visits: int = 0
    visit_findings: int = 0
    visits_missed: int = 0
    actions: dict = field(default_factory=dict)
    refused: dict = field(default_factory=dict)

    def count(self, what: str, refused: bool = False) -> None:
        table = self.refused if refused else self.actions
        table[what] = table.get(what, 0) + 1


class Engine:
    def __init__(self, sim: SimSystem, org: Org, behaviour: dict, seed: int):
        self.sim, self.org, self.behaviour, self.seed = sim, org, behaviour, seed
        self._heap: list = []
        self._seq = itertools.count()
        self.tracked: dict[str, Tracked] = {}
        self.tally = Tally()
        self.steps = 0
        self.phones: dict[tuple[str, str], str] = {}
        self.cards: dict[str, int] = {}
        self.points: dict[str, float] = {}
        self.refilled = 0

    def rng(self, *key):
        return actors.rng_for(self.seed, *key)

    def kind_of(self, unit_id: str) -> str:
        """A post's holder's behaviour: drawn for the person, so a refilled post gets a new one."""
        unit = self.org.units.get(unit_id)
        return actors.post_kind(self.seed, f"{unit_id}:{unit.lead if unit else ''}", self.behaviour)

    # -- the loop -------------------------------------------------------------------------------
    def at(self, when: datetime, fn, *args) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), fn, args))

    def run_until(self, end: datetime) -> None:
        while True:
            now = self.sim.clock.now()
            timer = self.sim.next_timer()
            action = self._heap[0][0] if self._heap else None
            if timer is not None and timer <= now:
                timer = None  # leased or failing: the sweep at the next move retries it
            nxt = min((t for t in (timer, action) if t is not None), default=None)
            if nxt is None or nxt > end:
                break
            self.sim.clock.set(max(nxt, now))
            if action is not None and action == nxt:
                _, _, fn, args = heapq.heappop(self._heap)
                fn(*args)
            self._step()
        self.sim.clock.set(max(end, self.sim.clock.now()))
        self._step()

    def _step(self) -> None:
        self.sim.step()
        self.steps += 1
        for event in self.sim.tap.take():
            self.observe(event)

    def _try(self, what: str, method: str, path: str, headers: dict, **kw):
        """An action a person takes; a 404/409 means the case moved on meanwhile (a breach came
        first) — counted, as a real lead's late tap would be."""
        try:
            answer = self.sim.call(method, path, headers, **kw)
        except SystemAnswer as exc:
            if exc.status in (404, 409):
                self.tally.count(what, refused=True)
                return None
            raise
        self.tally.count(what)
        return answer

    # -- what the system says -------------------------------------------------------------------
    def observe(self, event: dict) -> None:
        kind, payload = event["type"], event.get("payload") or {}
        tracked = self.tracked.get(payload.get("report_id") or "")
        if kind in HOLDING_EVENTS and tracked and payload.get("status") == "assigned":
            self._holding(tracked, payload)
        elif kind == "case.resolved" and tracked:
            tracked.resolutions += 1
            self._rate_later(tracked)
        elif kind == "department.assigned" and payload.get("role", "lead") == "lead":
            self._department(payload)

    def _holding(self, t: Tracked, payload: dict) -> None:
        assignee = payload.get("assignee") or {}
        t.case_id, t.epoch = payload["case_id"], t.epoch + 1
        t.level, t.unit_id = assignee.get("level"), assignee.get("unit_id")
        if payload.get("reopens"):
            t.reopens = payload["reopens"]
        if t.level not in LEVELS:
            return
        kind = "normal" if t.level == "township" else self.kind_of(t.unit_id)
        if kind == "absent":
            return
        key = (t.no, t.level, t.reopens)
        delay = actors.accept_delay(self.seed, self.behaviour, t.level, kind, key)
        self.at(self.sim.clock.now() + delay, self._accept, t, t.epoch, kind)

    # -- the holders' actions -------------------------------------------------------------------
    def holder_headers(self, t: Tracked) -> dict:
        if t.level == "township":
            return self.sim.headers("staff", t.township, name="镇综治中心")
        unit = self.org.units.get(t.unit_id)
        name = (unit.lead if unit else None) or (unit.name if unit else "村两委")
        return self.sim.headers("lead", t.township, t.unit_id, name)

    def _accept(self, t: Tracked, epoch: int, kind: str) -> None:
        if epoch != t.epoch:
            return
        if self._try("accept", "POST", f"/api/v1/cases/{t.case_id}/accept", self.holder_headers(t), json={}) is None:
            return
        what, after = actors.outcome(self.seed, self.behaviour, t.level, kind, (t.no, t.level, t.reopens))
        if what != "hold":
            self.at(self.sim.clock.now() + after, self._act, t, epoch, what)

    def _act(self, t: Tracked, epoch: int, what: str) -> None:
        if epoch != t.epoch:
            return
        path = f"/api/v1/cases/{t.case_id}/{what}"
        if what == "resolve":
            body = {"note": "已上门处理，群众确认问题解决"}
        else:
            body = {"reason": "needs_department" if t.level == "township" else "beyond_ability", "note": "本级无法解决"}
        self._try(what, "POST", path, self.holder_headers(t), json=body)

    def _department(self, payload: dict) -> None:
        headers = self.org.departments.get(payload.get("department_id"))
        t = self.tracked.get(payload.get("report_id") or "")
        if headers is None or t is None:
            return
        accept, solve = actors.department_delays(self.seed, self.behaviour, (t.no, t.reopens))
        now = self.sim.clock.now()
        base = f"/department/cases/{payload['case_id']}"
        self.at(now + accept, self._department_act, "accept", base, headers, {})
        if actors.rng_for(self.seed, "sign-off", t.no, t.reopens).random() < self.behaviour["department_sign_off_share"]:
            self.at(now + accept + solve, self._department_act, "sign-off", base, headers,
                    {"resolution": "已协调解决并现场验收"})
        else:  # beyond the department this year: it reports progress and the case stays open
            self.at(now + accept + solve, self._department_act, "progress", base, headers,
                    {"note": "需纳入项目计划，资金落实后实施"})

    def _department_act(self, action: str, base: str, headers: dict, body: dict) -> None:
        self._try(f"department_{action}", "POST", f"/api/v1{base}/{action}", headers, json=body)

    # -- residents ------------------------------------------------------------------------------
    def submit(self, no: int, township: str, body: dict, headers: dict) -> Tracked | None:
        answer = self.sim.call("POST", "/api/v1/reports", headers, json={"township": township, **body})
        self.tally.reports += 1
        t = Tracked(no, township, answer["id"], answer["tracking_no"],
                    {"Authorization": f"Bearer {answer['resident_token']}"} if answer.get("resident_token") else {})
        self.tracked[t.report_id] = t
        if answer.get("status") not in (None, "submitted", "assigned"):
            self.tally.instant += 1
        return t

    def _rate_later(self, t: Tracked) -> None:
        label, after = actors.rating(self.seed, self.behaviour, (t.no, t.resolutions))
        if label and t.resident:
            self.at(self.sim.clock.now() + after, self._rate, t, t.resolutions, label)

    def _rate(self, t: Tracked, resolution: int, label: str) -> None:
        if resolution != t.resolutions:
            return
        self._try("rating", "POST", f"/api/v1/reports/{t.tracking_no}/rating", t.resident, json={"rating": label},
                  ok=(200, 201))
