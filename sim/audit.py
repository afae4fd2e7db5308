"""The run's closing count: every report became exactly one case (or an instant answer), each case
was assigned once, no event is dead-lettered, stuck in an outbox or waiting on the bus."""
from __future__ import annotations

from .engine import Engine
from .system import SimSystem


def _cases(sim: SimSystem, township: str) -> list[dict]:
    headers = sim.headers("staff", township, name="模拟核对")
    out, skip = [], 0
    while True:
        page = sim.call("GET", f"/api/v1/townships/{township}/cases?show=all&limit=200&skip={skip}", headers)
        items = page.get("items", page) if isinstance(page, dict) else page
        out += items
        if len(items) < 200:
            return out
        skip += 200


def audit(sim: SimSystem, engine: Engine) -> dict:
    townships = sorted({t.township for t in engine.tracked.values()})
    cases = [c for code in townships for c in _cases(sim, code)]
    by_report: dict[str, int] = {}
    for c in cases:
        by_report[c["report_id"]] = by_report.get(c["report_id"], 0) + 1
    bus = sim.runtime.bus
    counts = {
        "reports": engine.tally.reports,
        "instant_answers": engine.tally.instant,
        "cases": len(cases),
        "reports_with_two_cases": sum(1 for n in by_report.values() if n > 1),
        "reports_without_case": sum(1 for r in engine.tracked if r not in by_report) - engine.tally.instant,
        "case_assigned_events": sim.tap.counts.get("case.assigned", 0),
        "dead_letters": sum(bus.dead_by_consumer().values()),
        "waiting_on_bus": bus.pending(),
        "outbox_backlog": sim.runtime.relay.backlog(),
    }
    counts["ok"] = (counts["cases"] + counts["instant_answers"] == counts["reports"]
                    and counts["reports_with_two_cases"] == 0 and counts["reports_without_case"] == 0
                    and counts["case_assigned_events"] == counts["cases"]
                    and counts["dead_letters"] == counts["waiting_on_bus"] == counts["outbox_backlog"] == 0)
    return counts
