"""What the township's board shows, in one JSON answer: open cases (overdue and warned first), the
open cases by level and age, the 三率 this quarter and by week, leads' standings and proposed
cards, and households whose visit is overdue."""
from __future__ import annotations

from datetime import datetime, timedelta

from shared.clock import iso, parse_iso
from shared.domain.categories import CATEGORIES
from shared.domain.levels import UNIT_NAMES
from shared.domain.localtime import local_zone
from shared.domain.statuses import OPEN_STATUSES

from .. import views
from ..transitions import STATUS_TEXT
from .facts import quarter_of
from .figures import quarter_range

AGE_BUCKETS = ((1, "1天内"), (2, "1–2天"), (7, "2–7天"), (None, "7天以上"))
TIMING_ORDER = {"overdue": 0, "due_soon": 1, "on_time": 2, "paused": 3, None: 4}
MAX_OPEN = 2000
TREND_WEEKS = 12


def _age_bucket(hours: float) -> str:
    for days, label in AGE_BUCKETS:
        if days is None or hours < days * 24:
            return label
    return AGE_BUCKETS[-1][1]


def open_cases(cases_coll, township: str, now: datetime) -> list[dict]:
    docs = cases_coll.find({"township": township, "status": {"$in": list(OPEN_STATUSES)}},
                           sort=[("created_at", -1)], limit=MAX_OPEN)
    out = []
    for doc in docs:
        view = views.summary(doc, now)
        age_h = (now - parse_iso(doc["created_at"])).total_seconds() / 3600
        assignee = doc.get("assignee") or {}
        out.append({"id": doc["_id"], "tracking_no": doc.get("tracking_no"), "category": doc.get("category"),
                    "category_name": CATEGORIES.get(doc.get("category"), doc.get("category")),
                    "summary": doc.get("summary"), "urgent": bool(doc.get("urgent")), "level": doc.get("level"),
                    "level_name": UNIT_NAMES.get(doc.get("level"), doc.get("level")),
                    "unit_name": assignee.get("unit_name"), "lead_name": assignee.get("lead_name"),
                    "status": doc["status"], "status_text": STATUS_TEXT.get(doc["status"], doc["status"]),
                    "timing": view["timing"], "deadline": view["deadline"], "created_at": doc["created_at"],
                    "age_hours": round(age_h, 1), "age_bucket": _age_bucket(age_h),
                    "escalations": doc.get("escalations", 0),
                    "unanswered_supervisions": view["unanswered_supervisions"],
                    "pause": _pause_view(doc)})
    out.sort(key=lambda c: (TIMING_ORDER.get(c["timing"], 3), c["deadline"] or "", c["created_at"]))
    return out


def _pause_view(doc: dict) -> dict | None:
    """A running pause as the board shows it: why, what is missing, since and until when."""
    running = doc.get("pause")
    if not running or doc.get("status") != "accepted":
        return None
    return {k: running.get(k) for k in ("reason", "reason_text", "note", "since", "resume_at", "until", "by")}


def by_level_and_age(cases: list[dict]) -> list[dict]:
    rows = {}
    for level in ("neighbourhood", "group", "area", "village", "township"):
        rows[level] = {"level": level, "level_name": UNIT_NAMES[level], "total": 0, "overdue": 0,
                       **{label: 0 for _, label in AGE_BUCKETS}}
    for case in cases:
        row = rows.get(case["level"])
        if row is None:
            continue
        row["total"] += 1
        row[case["age_bucket"]] += 1
        row["overdue"] += case["timing"] == "overdue"
    return list(rows.values())


def board(sup, township: str, now: datetime) -> dict:
    cases = open_cases(sup.cases.collection, township, now)
    q_start, q_end = quarter_range(now)
    quarter = quarter_of(iso(now))
    since, until = iso(q_start), iso(q_end)
    figures = sup.figures.compute(township, since, until, now, by="level")
    local = now.astimezone(local_zone())
    monday = (local - timedelta(days=local.weekday(), weeks=TREND_WEEKS - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0)
    # Up to the end of today (Beijing): whole days, which the rollups answer.
    tomorrow = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    weekly = sup.figures.weekly(township, iso(monday), iso(tomorrow), now)
    township_doc = sup.org.township(township) or {}
    return {
        "township": township, "name": township_doc.get("name", township), "now": iso(now), "quarter": quarter,
        "period": {"from": since, "to": until},
        "open_cases": cases[:300], "open_total": len(cases),
        "open_overdue": sum(1 for c in cases if c["timing"] == "overdue"),
        "open_due_soon": sum(1 for c in cases if c["timing"] == "due_soon"),
        "open_by_level": by_level_and_age(cases), "age_buckets": [label for _, label in AGE_BUCKETS],
        # 挂起: every paused case, the longest-waiting first (the clock is stopped for them).
        "paused_cases": sorted((c for c in cases if c["pause"]), key=lambda c: c["pause"]["since"]),
        # 积分超市: exchanges this quarter (reversed ones left out).
        "exchanges": sup.exchanges.period_totals(township, since, until),
        "figures": figures["total"], "figures_by_level": figures["rows"], "weekly": weekly,
        "standings": sup.cards.standings(township, quarter),
        "cards": sup.cards.list(township, quarter),
        "overdue_visits": sup.visits.overdue(township, limit=200),
        # 无人可联系的岗位: posts that can hold a case with nobody the configured channels reach.
        "unreachable_posts": sup.reachability(township) if getattr(sup, "reachability", None) else [],
    }
