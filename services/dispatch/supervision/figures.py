"""The 三率 and the seeds' counts, computed by the database over the derived columns (facts.py).

Per township, village, category or week the rows are cases (received in the period by
``created_at``); per level, lead or department they are stints (a case's time with one holder,
from its assignment there, ``assigned_at``). One ``aggregate`` call per question: SQL GROUP BY on
SQLite, a $group pipeline on MongoDB, percentiles by nearest rank.

Rates: 响应率 = accepted on time / cases whose acceptance is decided (accepted, or a deadline
missed); 解决率 = resolved / received; 满意率 = satisfied / rated; 2天解决率 = resolved within 48 h /
received. A rate with nothing under it is null, not 0.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from shared.clock import iso
from shared.domain.categories import CATEGORIES
from shared.domain.levels import LEAD_LEVELS, UNIT_NAMES
from shared.domain.localtime import local_zone
from shared.storage import Metric
from shared.storage.port import empty_row

from ..org import OrgRepository
from .rollups import PERCENTILES, SOURCE_OF, Rollups, floor_minute, week_key, whole_days

BY_CASES = {"township": ["township"], "village": ["village_id"], "category": ["category"], "week": ["week"],
            None: []}
BY_STINTS = {"level": ["level"], "lead": ["lead_key", "unit_id", "level"], "department": ["unit_id", "unit_name", "level"]}
BY = tuple(k for k in (*BY_CASES, *BY_STINTS) if k)
LEVEL_ORDER = ("neighbourhood", "group", "area", "village", "township", "department")


def metrics(now: datetime, stints: bool = False) -> dict[str, Metric]:
    m = {
        "received": Metric.count(), "accept_decided": Metric.count("accepted_on_time"),
        "accepted_on_time": Metric.sum("accepted_on_time"), "resolved": Metric.sum("resolved"),
        "rated": Metric.sum("rated"), "satisfied": Metric.sum("satisfied"),
        "resolved_within_2d": Metric.sum("resolved_within_2d"), "overdue_now": Metric.count("deadline", lt=iso(now)),
        "escalations": Metric.sum("escalations"), "breaches": Metric.sum("breach_count"),
        "breaches_accept": Metric.sum("breaches_accept"), "breaches_resolve": Metric.sum("breaches_resolve"),
        "accept_median_s": Metric.percentile("time_to_accept_s", 0.5),
        "accept_p90_s": Metric.percentile("time_to_accept_s", 0.9),
        "resolve_median_s": Metric.percentile("time_to_resolve_s", 0.5),
        "resolve_p90_s": Metric.percentile("time_to_resolve_s", 0.9),
        "disputes_mediated": Metric.sum("disputes_mediated"), "hazards_found": Metric.sum("hazards_found"),
        "micro_services": Metric.sum("micro_services"),
        # Pausing (挂起): shown beside time to solve; the 2-day share already leaves it out (facts.py).
        "paused_s": Metric.sum("paused_s"), "paused_now": Metric.sum("paused_now"),
    }
    if stints:
        m["breached_away"] = Metric.sum("breached_away")
        m["supervisions"] = Metric.sum("supervisions")
    return m


def _rate(num, den):
    return round(num / den, 4) if den else None


def with_rates(row: dict) -> dict:
    """Adds the rates; medians and p90s are reported in whole minutes (floored), as the rollups keep them."""
    for name in PERCENTILES:
        row[name] = floor_minute(row.get(name))
    row["response_rate"] = _rate(row["accepted_on_time"], row["accept_decided"])
    row["resolve_rate"] = _rate(row["resolved"], row["received"])
    row["satisfaction_rate"] = _rate(row["satisfied"], row["rated"])
    row["within_2d_rate"] = _rate(row["resolved_within_2d"], row["received"])
    return row


def local_day(text: str, end: bool = False) -> str:
    """'2026-11-01' (a local date) or an ISO time → the UTC text stored times compare with. An end
    date is exclusive of the day after: to=2026-11-30 covers all of 30 November."""
    if len(text) == 10:
        day = datetime.fromisoformat(text).replace(tzinfo=local_zone())
        return iso(day + timedelta(days=1) if end else day)
    from shared.clock import parse_iso
    return iso(parse_iso(text))


def quarter_range(now: datetime) -> tuple[datetime, datetime]:
    local = now.astimezone(local_zone())
    start_month = (local.month - 1) // 3 * 3 + 1
    start = local.replace(month=start_month, day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start.replace(year=start.year + 1, month=1) if start_month == 10 else start.replace(month=start_month + 3))
    return start, end


class FigureQueries:
    """The figures from the rollups (rollups.py) when the range is whole Beijing days and the rollups
    were built (``Rollups.built``: after an upgrade, until the sweeper's first build ends), else by
    scanning the facts (``scan``, also the reference the rollups are tested against)."""

    def __init__(self, cases_coll, stints_coll, org: OrgRepository, rollups: Rollups | None = None):
        self.cases = cases_coll
        self.stints = stints_coll
        self.org = org
        self.rollups = rollups

    def compute(self, township: str, since: str, until: str, now: datetime, by: str | None = None) -> dict:
        """{total, rows}: the township's totals and one row per group (labelled in Chinese)."""
        days = whole_days(since, until) if self.rollups and self.rollups.built() else None
        if days is None:
            return self.scan(township, since, until, now, by)
        scope = {"township": township}
        self.rollups.settle(scope)
        [total] = [{k: v for k, v in r.items() if k != "township"}
                   for r in self._rolled("township", scope, days, now, (since, until))] or [empty_row([], metrics(now))]
        rows: list[dict] = []
        if by == "week":
            rows = self._rolled("township", scope, days, now, (since, until), week=True)
        elif by:
            rows = self._rolled(by, scope, days, now, (since, until))
        return self._finish(township, since, until, by, with_rates(total), rows, names=by == "lead")

    def scan(self, township: str, since: str, until: str, now: datetime, by: str | None = None) -> dict:
        """The same answer by aggregating the cases and stints in the range (SQL GROUP BY, $group)."""
        case_where = {"township": township, "created_at": {"$gte": since, "$lt": until}}
        [total] = self.cases.aggregate([], metrics(now), case_where)
        total = with_rates(total)
        rows: list[dict] = []
        if by in BY_CASES and by:
            rows = self.cases.aggregate(BY_CASES[by], metrics(now), case_where)
        elif by in BY_STINTS:
            where = {"township": township, "assigned_at": {"$gte": since, "$lt": until}}
            rows = self.stints.aggregate(BY_STINTS[by], metrics(now, stints=True), where)
        return self._finish(township, since, until, by, total, rows, names=False)

    def _finish(self, township, since, until, by, total, rows, names: bool) -> dict:
        if by == "lead":
            rows = [r for r in rows if r["level"] in LEAD_LEVELS and r["lead_key"]]
        elif by == "department":
            rows = [r for r in rows if r["level"] == "department"]
        rows = [with_rates(r) for r in rows]
        self._label(township, by, rows, since, until, names)
        return {"township": township, "from": since, "to": until, "by": by, "total": total, "rows": rows}

    def city(self, city: str, since: str, until: str, now: datetime) -> list[dict]:
        """Every township of a city in one query (the operator's view)."""
        days = whole_days(since, until) if self.rollups and self.rollups.built() else None
        if days is None:
            rows = self.cases.aggregate(["township"], metrics(now),
                                        {"city": city, "created_at": {"$gte": since, "$lt": until}})
        else:
            self.rollups.settle({"city": city})
            rows = self._rolled("township", {"city": city}, days, now, (since, until))
        return sorted((with_rates(r) for r in rows), key=lambda r: r["township"])

    def weekly(self, township: str, since: str, until: str, now: datetime) -> list[dict]:
        rows = self.compute(township, since, until, now, by="week")["rows"]
        return sorted(rows, key=lambda r: r["week"])

    def _rolled(self, dim: str, scope: dict, days: tuple[str, str], now: datetime, span: tuple[str, str],
                week: bool = False) -> list[dict]:
        """Rows of one grouping from the rollups, with overdue now counted from the open rows."""
        keys = ["week"] if week else BY_CASES.get(dim) or BY_STINTS[dim]
        rows = self.rollups.read(dim, scope, days, keys, regroup=week_key if week else None)
        source = SOURCE_OF[dim]
        coll, field = (self.cases, "created_at") if source == "cases" else (self.stints, "assigned_at")
        where = {**scope, "deadline": {"$lt": iso(now)}, field: {"$gte": span[0], "$lt": span[1]}}
        overdue = {tuple(r[k] for k in keys): r["n"] for r in coll.aggregate(keys, {"n": Metric.count()}, where)}
        template = empty_row(keys, metrics(now, stints=source == "stints"))
        for row in rows:
            row["overdue_now"] = overdue.pop(tuple(row[k] for k in keys), 0)
        for key, n in overdue.items():  # cannot happen while rollups are current; kept so nothing hides
            rows.append({**template, **dict(zip(keys, key)), "overdue_now": n})
        return [{**template, **row} for row in rows]

    # -- labels -----------------------------------------------------------------------------------
    def _label(self, township: str, by: str | None, rows: list[dict], since: str, until: str,
               names_on_rows: bool = False) -> None:
        if by in ("village", "lead"):
            units = {u["_id"]: u for u in self.org.tree(township)}
        if by == "lead" and names_on_rows:  # the rollups carry the names each lead held the post under
            names = {r["lead_key"]: (r.get("lead_name"), r.get("unit_name")) for r in rows}
        elif by == "lead":
            # The name a lead had while holding (a post may have changed hands): from their stints.
            names = {}
            for r in self.stints.aggregate(["lead_key", "lead_name", "unit_name"], {"n": Metric.count()},
                                           {"township": township, "assigned_at": {"$gte": since, "$lt": until}}):
                names[r["lead_key"]] = (r["lead_name"], r["unit_name"])
        for row in rows:
            if by == "village":
                unit = units.get(row["village_id"]) or {}
                row["label"] = unit.get("name") or "未定位"
            elif by == "category":
                row["label"] = CATEGORIES.get(row["category"], row["category"])
            elif by == "level":
                row["label"] = UNIT_NAMES.get(row["level"], row["level"])
            elif by == "lead":
                lead_name, unit_name = names.get(row["lead_key"], (None, None))
                path = self._path(units, row["unit_id"]) or unit_name
                row.update(lead_name=lead_name, unit_name=unit_name, path=path,
                           label=f"{path} {lead_name or ''}".strip())
            elif by == "department":
                row["label"] = row["unit_name"] if row["unit_id"] else "市直部门（尚未指派）"
            elif by == "week":
                row["label"] = row["week"]
            elif by == "township":
                row["label"] = (self.org.township(row["township"]) or {}).get("name", row["township"])
        if by == "level":
            rows.sort(key=lambda r: LEVEL_ORDER.index(r["level"]) if r["level"] in LEVEL_ORDER else 99)
        elif by in ("village", "category", "department", "lead"):
            rows.sort(key=lambda r: (-r["received"], r.get("label") or ""))

    @staticmethod
    def _path(units: dict, unit_id: str | None) -> str | None:
        names, unit = [], units.get(unit_id)
        while unit is not None and unit["level"] != "township":
            names.append(unit["name"])
            unit = units.get(unit.get("parent_id"))
        return "/".join(reversed(names)) or None
