"""The supervision figures (三率, counts, median/p90 times) on a year of a whole city's cases, through the
storage port's ``aggregate`` against raw SQL doing the same on the same tables.

    python -m bench.bench_figures                  # 200,000 cases (quick)
    python -m bench.bench_figures --cases 1000000  # a year of a city of 20 townships

Data: the cases and stints are written straight into the SQLite adapter's table shape (``_id``,
``version``, ``doc`` JSON and the declared columns, the same rows CaseFacts and the projector write)
in 10,000-row transactions — running a million reports through intake and dispatch would measure
them, not the figures. The generator draws each case's story (category, whether and how fast it was
accepted, escalated, breached, resolved, rated) from fixed rates, spread uniformly over 2026 across
20 townships × 10 villages × 72 neighbourhoods. The indexes are the ones dispatch declares.

The rollups (supervision/rollups.py) are built from the same rows by the rebuild command's code (timed
and printed), then every query is answered three ways in the same run: from the rollups through
``FigureQueries`` (the API's whole answer, total row and labels included), through the port's
``aggregate`` over the facts (the scan), and by raw SQL. The rollups' answer is checked equal to the
scan's, figure by figure, before it is timed.

Each scan query computes every figure of the figures API (counts, sums, overdue now, median and p90 of
two durations) for one grouping, from the covering indexes dispatch declares (no document is
read). The baseline is hand-written SQL with the same GROUP BY and the same window functions (one
pass per duration), so the ratio is the port's own overhead (building the statements, merging
percentile rows into groups). Median of 3 runs each. No ANALYZE: the adapter never runs it, so the
planner works as it does in production.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.common import table
from services.dispatch.bootstrap import CASE_INDEXES
from services.dispatch.supervision.facts import (CASE_FIGURE_COLUMNS, CASE_FIGURE_INDEXES, STINT_COLUMNS,
                                                 STINT_INDEXES, lead_key)
from services.dispatch.supervision.figures import FigureQueries, metrics, with_rates
from services.dispatch.supervision.rollups import Rollups
from shared.clock import SystemClock, iso
from shared.domain.levels import LEAD_LEVELS
from shared.storage.sqlite import SQLiteStore

CITY = "430382"
TOWNSHIPS = [f"{CITY}{100 + i:03d}" for i in range(20)]
LEVELS = ("neighbourhood", "group", "area", "village", "township")
CATEGORIES = (("environment", 30), ("road", 10), ("water", 12), ("power", 8), ("dispute", 12), ("hazard", 8),
              ("housing", 8), ("policy", 4), ("social", 4), ("other", 4))
YEAR_START = datetime(2025, 12, 31, 16, 0, tzinfo=timezone.utc)  # 2026-01-01 00:00 Beijing
NOW = datetime(2027, 1, 1, 1, 0, tzinfo=timezone.utc)


def week_of(day: datetime) -> str:
    local = (day + timedelta(hours=8)).date()
    return (local - timedelta(days=local.weekday())).isoformat()


def generate(i: int, rnd: random.Random) -> tuple[dict, list[dict]]:
    township = TOWNSHIPS[i % len(TOWNSHIPS)]
    village = rnd.randrange(10)
    hood = rnd.randrange(72)
    path = [f"v{village}", f"a{hood // 24}", f"g{hood // 6}", f"n{hood}"]
    units = {"neighbourhood": f"u-{township}-{village}-n{hood}", "group": f"u-{township}-{village}-g{hood // 6}",
             "area": f"u-{township}-{village}-a{hood // 24}", "village": f"u-{township}-v{village}",
             "township": f"t-{township}"}
    created = YEAR_START + timedelta(seconds=rnd.randrange(365 * 86400))
    category = rnd.choices([c for c, _ in CATEGORIES], [w for _, w in CATEGORIES])[0]
    kind = {"dispute": "dispute", "hazard": "hazard"}.get(category, "service")
    climbs = 0
    while climbs < 4 and rnd.random() < 0.12:
        climbs += 1
    breached_first = climbs > 0 and rnd.random() < 0.5
    level = LEVELS[climbs]
    accepted = rnd.random() < 0.93
    accept_s = int(rnd.lognormvariate(7.5, 1.0)) + climbs * 7200 if accepted else None
    resolved = accepted and rnd.random() < 0.9
    resolve_s = int(accept_s + rnd.lognormvariate(10.5, 1.1)) if resolved else None
    rated = resolved and rnd.random() < 0.6
    satisfied = int(rnd.random() < 0.9) if rated else None
    open_deadline = None if resolved else iso(created + timedelta(hours=rnd.choice((2, 6, 24, 72, 200))))
    case_id = f"c{i:08d}"
    case = {
        "_id": case_id, "township": township, "city": CITY, "village_id": units["village"], "report_id": f"r{i:08d}",
        "tracking_no": f"T{i:07d}", "status": "resolved" if resolved else ("accepted" if accepted else "assigned"),
        "level": level, "unit_id": units[level], "category": category, "kind": kind, "tier": "general",
        "created_at": iso(created), "week": week_of(created), "escalations": climbs,
        "accepted_on_time": (0 if breached_first else 1) if accepted else (0 if breached_first else None),
        "time_to_accept_s": accept_s, "resolved": int(resolved), "time_to_resolve_s": resolve_s,
        "resolved_within_2d": int(bool(resolved and resolve_s <= 172800)), "rated": int(rated),
        "satisfied": satisfied, "breach_count": int(breached_first), "breaches_accept": int(breached_first),
        "breaches_resolve": 0, "deadline": open_deadline, "disputes_mediated": int(resolved and kind == "dispute"),
        "hazards_found": int(kind == "hazard"),
        "micro_services": int(resolved and kind == "service" and level in ("neighbourhood", "group")),
        "timer_due": open_deadline, "outbox_due": None, "summary": "门口路灯坏了一个星期，晚上出行不安全",
        "timeline": [{"at": iso(created), "type": "reported", "actor": "resident"},
                     {"at": iso(created), "type": "assigned", "actor": "system", "level": "neighbourhood"}],
    }
    stints = []
    for step in range(climbs + 1):
        lvl = LEVELS[step]
        last = step == climbs
        lead_name = f"{'/'.join(path)}-{lvl}"
        stints.append({
            "_id": f"{case_id}:{step + 1}", "township": township, "city": CITY, "village_id": units["village"],
            "case_id": case_id, "category": category, "kind": kind, "step": step + 1, "level": lvl,
            "unit_id": units[lvl], "unit_name": lvl, "lead_name": lead_name,
            "lead_key": lead_key(lvl, units[lvl], lead_name), "assigned_at": iso(created + timedelta(hours=2 * step)),
            "week": case["week"], "accepted_on_time": (1 if accepted else None) if last else (0 if breached_first else None),
            "time_to_accept_s": accept_s - climbs * 7200 if last and accepted else None,
            "resolved": int(last and resolved), "resolved_on_time": 1 if last and resolved else None,
            "time_to_resolve_s": resolve_s if last and resolved else None,
            "resolved_within_2d": case["resolved_within_2d"] if last else 0, "rated": case["rated"] if last else 0,
            "satisfied": satisfied if last else None, "escalations": int(not last and not breached_first),
            "breached_away": int(not last and breached_first and step == 0),
            "breach_count": int(step == 0 and breached_first), "breaches_accept": int(step == 0 and breached_first),
            "breaches_resolve": 0, "supervisions": 0, "supervisions_unanswered": 0,
            "deadline": open_deadline if last else None,
            "disputes_mediated": case["disputes_mediated"] if last else 0,
            "hazards_found": case["hazards_found"] if step == 0 else 0,
            "micro_services": case["micro_services"] if last else 0,
        })
    return case, stints


def seed(path: Path, n: int) -> tuple:
    store = SQLiteStore(path)
    cases = store.collection("cases", CASE_INDEXES + CASE_FIGURE_INDEXES, columns=CASE_FIGURE_COLUMNS)
    stints = store.collection("stints", STINT_INDEXES, columns=STINT_COLUMNS)
    conn = store.connection()

    def sql(coll):
        cols = ["_id", "version", "doc"] + coll.columns
        return f"INSERT INTO {coll.table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"

    def row(coll, doc):
        return [doc["_id"], 1, json.dumps(doc, ensure_ascii=False)] + [doc.get(c) for c in coll.columns]

    rnd = random.Random(20261102)
    case_rows, stint_rows, total_stints = [], [], 0
    started = time.perf_counter()
    for i in range(n):
        case, its = generate(i, rnd)
        case_rows.append(row(cases, case))
        stint_rows.extend(row(stints, s) for s in its)
        if len(case_rows) == 10_000 or i == n - 1:
            conn.execute("BEGIN")
            conn.executemany(sql(cases), case_rows)
            conn.executemany(sql(stints), stint_rows)
            conn.execute("COMMIT")
            total_stints += len(stint_rows)
            case_rows, stint_rows = [], []
    return store, cases, stints, total_stints, time.perf_counter() - started


# -- the baseline: the same figures in hand-written SQL -------------------------------------------

def raw_figures(conn: sqlite3.Connection, tbl: str, by: list[str], where: str, params: list, now: str,
                stints: bool) -> list:
    keys = ", ".join(by)
    sums = ["accepted_on_time", "resolved", "rated", "satisfied", "resolved_within_2d", "escalations",
            "breach_count", "breaches_accept", "breaches_resolve", "disputes_mediated", "hazards_found",
            "micro_services"] + (["breached_away", "supervisions"] if stints else [])
    select = ", ".join([keys] if keys else []) + (", " if keys else "") + \
        "COUNT(*), COUNT(accepted_on_time), " + \
        "COALESCE(SUM(CASE WHEN deadline IS NOT NULL AND deadline < ? THEN 1 ELSE 0 END), 0), " + \
        ", ".join(f"COALESCE(SUM({c}), 0)" for c in sums)
    group = f" GROUP BY {keys}" if keys else ""
    out = [conn.execute(f"SELECT {select} FROM {tbl} WHERE {where}{group}", [now] + params).fetchall()]
    part = f"PARTITION BY {keys} " if keys else ""
    for col in ("time_to_accept_s", "time_to_resolve_s"):  # median and p90 in one window pass each
        out.append(conn.execute(
            f"SELECT {keys + ', ' if keys else ''}v, n, rn FROM (SELECT {keys + ', ' if keys else ''}{col} AS v, "
            f"ROW_NUMBER() OVER ({part}ORDER BY {col}) AS rn, COUNT(*) OVER ({part.strip()}) AS n "
            f"FROM {tbl} WHERE {where} AND {col} IS NOT NULL) "
            f"WHERE rn = (500 * n + 999) / 1000 OR rn = (900 * n + 999) / 1000", params).fetchall())
    return out


class NoOrg:
    """The bench seeds no org tree: labels fall back to codes (the same for both paths)."""

    def tree(self, township):
        return []

    def township(self, code):
        return None


def rolled_answer(queries: FigureQueries, where: dict, span: dict, by: str | None, now) -> list[dict]:
    """The figures API's answer from the rollups (with its total row and labels, more than the scan does)."""
    if by == "city":
        return queries.city(CITY, span["$gte"], span["$lt"], now)
    answer = queries.compute(where["township"], span["$gte"], span["$lt"], now, by=by)
    return answer["rows"] if by else [answer["total"]]


def check_equal(label: str, rolled: list[dict], by: list[str], scanned: list[dict]) -> None:
    """Every figure the scan gives (percentiles at the reported minute precision) — or the bench stops."""
    by = ["week"] if by == ["week"] else by
    key = (lambda r: tuple(r[k] for k in by)) if by else (lambda r: ())
    rolled_by = {key(r): r for r in rolled}
    if by and by[0] == "lead_key":  # the API lists the 三长 only (township staff hold no points)
        scanned = [r for r in scanned if r["level"] in LEAD_LEVELS and r["lead_key"]]
    assert len(rolled_by) == len(scanned), (label, len(rolled_by), len(scanned))
    for row in scanned:
        for name, value in with_rates(dict(row)).items():
            assert rolled_by[key(row)][name] == value, (label, key(row), name, rolled_by[key(row)][name], value)


def timed(fn, runs: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200_000)
    ap.add_argument("--dir", help="where the SQLite file goes (default: a temporary folder)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store, cases, stints, n_stints, seconds = seed(Path(tmp) / "figures.db", args.cases)
        size = (Path(tmp) / "figures.db").stat().st_size / 1e6
        print(f"seeded {args.cases:,} cases and {n_stints:,} stints in {seconds:.0f} s "
              f"(SQLite file {size:,.0f} MB, SQLite {sqlite3.sqlite_version})\n")
        conn = store.connection()
        now = NOW
        t0 = TOWNSHIPS[3]
        year = {"$gte": iso(YEAR_START), "$lt": iso(YEAR_START + timedelta(days=365))}
        q4 = {"$gte": "2026-09-30T16:00:00.000000Z", "$lt": year["$lt"]}
        plans = [
            ("one township, a quarter, by village", cases, ["village_id"], {"township": t0, "created_at": q4}, False,
             "village"),
            ("one township, a year, total", cases, [], {"township": t0, "created_at": year}, False, None),
            ("one township, a year, by week", cases, ["week"], {"township": t0, "created_at": year}, False, "week"),
            ("one township, a year, by level", stints, ["level"], {"township": t0, "assigned_at": year}, True, "level"),
            ("one township, a year, by lead", stints, ["lead_key", "unit_id", "level"],
             {"township": t0, "assigned_at": year}, True, "lead"),
            ("whole city, a year, by township", cases, ["township"], {"city": CITY, "created_at": year}, False,
             "city"),
        ]
        started = time.perf_counter()
        rollups = Rollups(store, cases, stints, SystemClock())
        days = rollups.rebuild()
        print(f"rollups rebuilt from the facts: {days:,} township-days in {time.perf_counter() - started:.0f} s "
              f"({rollups.docs.count():,} documents)\n")
        queries = FigureQueries(cases, stints, NoOrg(), rollups)
        rows, load = [], os.getloadavg()
        for label, coll, by, where, is_stints, api_by in plans:
            span = next(v for v in where.values() if isinstance(v, dict))
            rolled_ms, rolled = timed(lambda: rolled_answer(queries, where, span, api_by, now))
            check_equal(label, rolled, by, coll.aggregate(by, metrics(now, stints=is_stints), where))
            port_ms, result = timed(lambda: coll.aggregate(by, metrics(now, stints=is_stints), where))
            time_field = "assigned_at" if is_stints else "created_at"
            scope = "township" if "township" in where else "city"
            sql_where = f"{scope} = ? AND {time_field} >= ? AND {time_field} < ?"
            params = [where[scope], where[time_field]["$gte"], where[time_field]["$lt"]]
            raw_ms, raw = timed(lambda: raw_figures(conn, coll.table, by, sql_where, params, iso(now), is_stints))
            assert len(raw[0]) == len(result), (label, len(raw[0]), len(result))
            scanned = coll.aggregate([], {"n": metrics(now)["received"]}, where)[0]["n"]
            rows.append([label, scanned, len(result), rolled_ms, port_ms, raw_ms, round(rolled_ms / raw_ms, 3),
                         round(port_ms / raw_ms, 2)])
        print(f"load average at the queries' start: {', '.join(f'{x:.2f}' for x in load)} → end: "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores, shared)\n")
        print(table(["figure query (every figure of the API)", "rows in range", "groups", "rollups ms", "scan (port) ms",
                     "raw SQL ms", "rollups / raw", "scan / raw"], rows))
        store.close()


if __name__ == "__main__":
    main()
