"""The results, read back from the real APIs: the figures (三率, 2-day share, per level, per
department, per week), points standings and cards, and the XLSX export a township reports upward."""
from __future__ import annotations

from datetime import timedelta

from .system import SimSystem


def collect(sim: SimSystem, city, opts, engine) -> dict:
    admin = sim.admin_headers()
    frm, to = opts.start.isoformat(), (opts.start + timedelta(days=opts.days - 1)).isoformat()
    span = f"from={frm}&to={to}"
    figures = {"city": sim.call("GET", f"/api/v1/cities/{city.code}/figures?{span}", admin), "townships": {}}
    for town in city.townships:
        base = f"/api/v1/townships/{town.code}/figures?{span}"
        figures["townships"][town.code] = {
            "name": town.name,
            "whole": sim.call("GET", base, admin),
            **{by: sim.call("GET", f"{base}&by={by}", admin) for by in ("level", "department", "week", "category")},
        }
    xlsx = {t.code: sim.call("GET", f"/api/v1/townships/{t.code}/figures/export?period=month&{span}", admin)
            for t in city.townships}
    boards = {}
    for town in city.townships:
        b = sim.call("GET", f"/api/v1/townships/{town.code}/board", admin)
        boards[town.code] = {"name": town.name, "quarter": b.get("quarter"), "open_total": b.get("open_total"),
                             "open_overdue": b.get("open_overdue"), "overdue_visits": len(b.get("overdue_visits") or []),
                             **{k: (b.get("figures") or {}).get(k) for k in ("response_rate", "resolve_rate",
                                                                            "satisfaction_rate", "within_2d_rate")}}
    series = {"boards": boards, "cards": {CARD_NAMES.get(k, k): v for k, v in sorted(engine.cards.items())},
              "points": round(sum(engine.points.values()), 1)}
    return {"figures": figures, "xlsx": xlsx, "series": series}


CARD_NAMES = {"red_confirmed": "红牌（确认，岗位空缺）", "red": "红牌（拟定）", "yellow": "黄牌（拟定）", "blue": "蓝牌（拟定）", "none": "无牌"}
