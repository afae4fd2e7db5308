"""The city's figures from its townships' answers: with one township, the system's own rows; with
several, counts summed and rates recomputed from them as the figures API defines them; medians
are the townships' medians weighted by their cases (said so in the report)."""
from __future__ import annotations

LEVEL_NAMES = {"neighbourhood": "邻", "group": "组", "area": "片", "village": "村", "township": "镇", "department": "市直部门"}
RATIOS = {"response_rate": ("accepted_on_time", "accept_decided"), "resolve_rate": ("resolved", "received"),
          "satisfaction_rate": ("satisfied", "rated"), "within_2d_rate": ("resolved_within_2d", "received")}
MEDIANS = ("accept_median_s", "accept_p90_s", "resolve_median_s", "resolve_p90_s")


def combine(rows: list[dict]) -> dict:
    rows = [r for r in rows if r]
    if len(rows) == 1:
        return dict(rows[0])
    out: dict = {}
    for r in rows:
        for k, v in r.items():
            if isinstance(v, int) and not isinstance(v, bool) and k not in MEDIANS:
                out[k] = out.get(k, 0) + v
    for rate, (num, den) in RATIOS.items():
        out[rate] = round(out.get(num, 0) / out[den], 4) if out.get(den) else None
    for m in MEDIANS:
        weighted = [(r[m], r.get("received", 0)) for r in rows if r.get(m) is not None and r.get("received")]
        total = sum(w for _, w in weighted)
        out[m] = round(sum(v * w for v, w in weighted) / total) if total else None
    return out


def _grouped(towns: list[dict], by: str, key: str) -> dict[str, dict]:
    groups: dict[str, list[dict]] = {}
    for t in towns:
        for row in t.get(by, {}).get("rows", []):
            groups.setdefault(row.get(key) or row.get("label"), []).append(row)
    return {k: combine(v) for k, v in groups.items()}


def summarise(outcome) -> dict:
    towns = list(outcome.figures["townships"].values())
    weeks = _grouped(towns, "week", "label")
    return {
        "total": combine([t["whole"].get("total") or {} for t in towns]),
        "levels": _grouped(towns, "level", "level"),
        "departments": _grouped(towns, "department", "label"),
        "weeks": {w: row.get("received", 0) for w, row in weeks.items()},
    }
