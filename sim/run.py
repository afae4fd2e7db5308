"""One simulation: generate the city, install it, schedule the year, run it, read the results back
from the real APIs and count that nothing was lost or doubled."""
from __future__ import annotations

import time
import resource
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta
from pathlib import Path

from . import actors, arrivals, reviews, setup
from .audit import audit
from .city import City, generate
from .engine import Engine
from .results import collect
from .system import SimSystem

ZONE = arrivals.ZONE


@dataclass
class Options:
    city: dict
    behaviour: dict
    seed: int = 1
    start: date = date(2026, 1, 1)
    days: int = 365
    intensity: float = 1.0
    policy: dict | None = None
    label: str = "现行政策"


@dataclass
class Outcome:
    label: str
    counts: dict
    figures: dict
    xlsx: dict[str, bytes]
    audit: dict
    runtime_s: float
    peak_mb: float
    city: dict = field(default_factory=dict)
    series: dict = field(default_factory=dict)


def simulate(opts: Options, folder: Path) -> Outcome:
    started = time.perf_counter()
    city = generate(opts.city, opts.seed)
    begin = datetime.combine(opts.start, dtime(0), ZONE)
    sim = SimSystem(folder, begin)
    try:
        org = setup.install(sim, city, opts.policy)
        engine = Engine(sim, org, opts.behaviour, opts.seed)
        _schedule(engine, city, org, opts)
        end = begin + timedelta(days=opts.days)
        engine.run_until(end)
        result = collect(sim, city, opts, engine)
        checks = audit(sim, engine)
    finally:
        sim.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the process's peak resident set
    return Outcome(opts.label, engine_counts(engine), result["figures"], result["xlsx"], checks,
                   round(time.perf_counter() - started, 1), round(peak / 2**20, 1), city.counts(), result["series"])


def engine_counts(engine: Engine) -> dict:
    t = engine.tally
    return {"reports": t.reports, "instant_answers": t.instant, "visits": t.visits, "visit_findings": t.visit_findings,
            "visits_missed": t.visits_missed, "actions": dict(sorted(t.actions.items())),
            "late_taps": dict(sorted(t.refused.items())), "requests": engine.sim.requests, "steps": engine.steps,
            "refilled": engine.refilled, "cards_proposed": dict(sorted(engine.cards.items())), "points": engine.points}


def _schedule(engine: Engine, city: City, org: setup.Org, opts: Options) -> None:
    towns = [(t.code, len(t.households)) for t in city.townships]
    by_code = {t.code: t for t in city.townships}
    client = {t.code: engine.sim.headers("client", t.code, name="模拟小程序") for t in city.townships}
    for no, a in enumerate(arrivals.reports(opts.seed, opts.start, opts.days, towns, opts.behaviour, opts.intensity)):
        h = by_code[a.township].households[a.household]
        body = {"address": h.address, "category": a.category, "description": actors.DESCRIPTIONS[a.category],
                "reporter_phone": h.phone, "reporter_name": h.head, "channel": a.channel}
        engine.at(a.at, engine.submit, no, a.township, body, client[a.township])
    engine.phones = {(t.code, h.address): h.phone for t in city.townships for h in t.households}
    offset = 10_000_000
    for no, (at, code, pick, found) in enumerate(arrivals.visits(opts.seed, opts.start, opts.days, towns, opts.behaviour)):
        engine.at(at, _visit, engine, org, offset + no, code, pick, found)
    reviews.schedule(engine, org, opts.start, opts.days)


def _visit(engine: Engine, org: setup.Org, no: int, township: str, pick: float, found: float) -> None:
    """A 邻长 visits one of their households; a finding is sometimes reported through intake."""
    hoods = org.hoods[township]
    if not hoods:
        return
    unit = org.units[hoods[int(pick * len(hoods))]]
    rng = actors.rng_for(engine.seed, "visit", no)
    if not unit.households or unit.lead is None or engine.kind_of(unit.id) == "absent":
        engine.tally.visits_missed += 1
        return
    headers = engine.sim.headers("lead", township, unit.id, unit.lead)
    household, address = rng.choice(unit.households)
    body = {"household_id": household, "mode": rng.choice(("in_person", "in_person", "phone", "wechat"))}
    b = engine.behaviour
    if found < b["visit_finds_problem"]:
        engine.tally.visit_findings += 1
        body["findings"] = "走访发现问题，已记录"
        if found < b["visit_finds_problem"] * b["visit_report_share"]:
            category = rng.choices(list(b["categories"]), weights=list(b["categories"].values()))[0]
            t = engine.submit(no, township, {"household_id": household, "category": category, "channel": "lead",
                                             "description": actors.DESCRIPTIONS[category],
                                             "reporter_phone": engine.phones[(township, address)]}, headers)
            body["report_id"] = t.report_id
    else:
        body["findings"] = "走访正常，无新诉求"
    engine.sim.call("POST", "/api/v1/visits", headers, json=body)
    engine.tally.visits += 1
