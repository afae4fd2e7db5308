"""How the people behave: draws from the stated distributions, each keyed by what it is about
(the report, the level, the resolution), so the same synthetic year unfolds the same under two
policies wherever the policy does not change who holds the case.

- A post's lead is *absent* (never acts; the case climbs on breaches) with ``absent_share``, *slow*
  (every delay × ``slow_factor``) with ``slow_share``, else normal — drawn once per post.
- Time to accept and to act after accepting: log-normal, the level's median, spread ``sigma``.
- After accepting: resolve with the level's ``resolve`` share, escalate with its ``escalate``
  share, else hold it until the SLA breach moves it up.
- Departments accept after a log-normal delay (median ``department_accept_median_h``) and, with
  ``department_sign_off_share``, sign off after ``department_resolve_median_d`` days (log-normal,
  sigma 0.8); otherwise they report progress then and the case stays open.
- Residents rate a resolution with ``rating_share`` after 2–48 hours; ``unsatisfied_share`` of
  those are unsatisfied, which reopens the case.
"""
from __future__ import annotations

import math
import random
from datetime import timedelta

DESCRIPTIONS = {
    "environment": "门口垃圾好几天没人清运，气味很大", "road": "村道路面塌陷一个坑，晚上骑车危险",
    "water": "自来水最近浑浊发黄，烧开也有沉淀", "power": "组里路灯频闪，晚上出行不方便",
    "dispute": "与邻居因菜地地界发生纠纷，希望调解", "hazard": "屋后山坡有落石，担心下雨滑坡",
    "housing": "老房子屋顶漏水，下雨家里到处是水", "policy": "想咨询一下城乡居民医保怎么缴费",
    "social": "家里老人行动不便，想申请居家养老服务", "other": "小区电动车乱停乱放，占用消防通道",
}


def rng_for(seed: int, *key) -> random.Random:
    return random.Random(":".join(map(str, (seed, *key))))


def lognormal_hours(rng: random.Random, median_h: float, sigma: float) -> timedelta:
    return timedelta(hours=median_h * math.exp(rng.gauss(0.0, sigma)))


def post_kind(seed: int, unit_id: str, behaviour: dict) -> str:
    u = rng_for(seed, "post", unit_id).random()
    if u < behaviour["absent_share"]:
        return "absent"
    return "slow" if u < behaviour["absent_share"] + behaviour["slow_share"] else "normal"


def accept_delay(seed: int, behaviour: dict, level: str, kind: str, key: tuple) -> timedelta:
    spec = behaviour["levels"][level]
    delay = lognormal_hours(rng_for(seed, "accept", *key), spec["accept_median_h"], spec["sigma"])
    return delay * (behaviour["slow_factor"] if kind == "slow" else 1)


def outcome(seed: int, behaviour: dict, level: str, kind: str, key: tuple) -> tuple[str, timedelta]:
    """("resolve" | "escalate" | "hold", after how long)."""
    spec = behaviour["levels"][level]
    rng = rng_for(seed, "outcome", *key)
    u = rng.random()
    what = "resolve" if u < spec["resolve"] else "escalate" if u < spec["resolve"] + spec["escalate"] else "hold"
    after = lognormal_hours(rng, spec["resolve_median_h"] * (0.5 if what == "escalate" else 1), spec["sigma"])
    return what, after * (behaviour["slow_factor"] if kind == "slow" else 1)


def department_delays(seed: int, behaviour: dict, key: tuple) -> tuple[timedelta, timedelta]:
    rng = rng_for(seed, "department", *key)
    accept = lognormal_hours(rng, behaviour["department_accept_median_h"], 0.8)
    return accept, lognormal_hours(rng, behaviour["department_resolve_median_d"] * 24, 0.8)


def rating(seed: int, behaviour: dict, key: tuple) -> tuple[str | None, timedelta]:
    """("满意" | "不满意" | None: no rating, after how long)."""
    rng = rng_for(seed, "rating", *key)
    after = timedelta(hours=2 + 46 * rng.random())
    if rng.random() >= behaviour["rating_share"]:
        return None, after
    return ("不满意" if rng.random() < behaviour["unsatisfied_share"] else "满意"), after
