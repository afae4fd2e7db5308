"""When residents report and leads visit: a seeded Poisson process per day, shaped by the hour of
day, the weekday and China's public holidays (chinese_calendar, as the SLA clocks use).

Reports: the day's expected count is the yearly rate ÷ 365 × the day's factor (weekday 1.0,
weekend 0.8, public holiday 0.6, normalised so a year keeps its total); each report's hour follows
HOUR_WEIGHTS (a morning and an evening peak), its minute is uniform. Visits: working days only,
09:00–18:00 uniform.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

ZONE = ZoneInfo("Asia/Shanghai")
HOUR_WEIGHTS = (0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 1.0, 2.0, 3.5, 4.5, 4.5, 3.5, 2.0, 2.5, 3.0, 3.0, 3.0,
                2.5, 2.5, 3.5, 4.0, 3.0, 1.5, 0.6)
DAY_FACTORS = {"workday": 1.0, "weekend": 0.8, "holiday": 0.6}


@dataclass(frozen=True)
class Arrival:
    at: datetime
    township: str
    household: int
    category: str
    channel: str


def day_kind(day: date) -> str:
    try:
        if chinese_calendar.is_holiday(day) and chinese_calendar.get_holiday_detail(day)[1]:
            return "holiday"
        return "workday" if chinese_calendar.is_workday(day) else "weekend"
    except NotImplementedError:  # outside the calendar's years: weekends only
        return "weekend" if day.weekday() >= 5 else "workday"


def poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def reports(seed: int, start: date, days: int, townships: list[tuple[str, int]], behaviour: dict,
            intensity: float = 1.0) -> list[Arrival]:
    """Every resident's report of the period, in time order. ``townships``: (code, households)."""
    rng = random.Random(f"reports:{seed}")
    kinds = [day_kind(start + timedelta(days=i)) for i in range(days)]
    mean_factor = sum(DAY_FACTORS[k] for k in kinds) / days
    out = []
    for i, kind in enumerate(kinds):
        day = start + timedelta(days=i)
        for code, households in townships:
            mean = behaviour["reports_per_household_year"] * households / 365 * intensity * DAY_FACTORS[kind] / mean_factor
            for _ in range(poisson(rng, mean)):
                hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
                at = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=ZONE)
                out.append(Arrival(at, code, rng.randrange(households), _pick(rng, behaviour["categories"]),
                                   _pick(rng, behaviour["channels"])))
    out.sort(key=lambda a: (a.at, a.township, a.household))
    return out


def visits(seed: int, start: date, days: int, townships: list[tuple[str, int]], behaviour: dict) -> list[tuple]:
    """(time, township, index among its visited households' draws) of every visit, working days only."""
    rng = random.Random(f"visits:{seed}")
    kinds = [day_kind(start + timedelta(days=i)) for i in range(days)]
    workdays = sum(1 for k in kinds if k == "workday") or 1
    out = []
    for i, kind in enumerate(kinds):
        if kind != "workday":
            continue
        day = start + timedelta(days=i)
        for code, households in townships:
            per_day = behaviour["visits_per_household_year"] * households * days / 365 / workdays
            for _ in range(poisson(rng, per_day)):
                at = datetime(day.year, day.month, day.day, 9, tzinfo=ZONE) + timedelta(seconds=rng.randrange(9 * 3600))
                out.append((at, code, rng.random(), rng.random()))
    out.sort(key=lambda v: (v[0], v[1]))
    return out
