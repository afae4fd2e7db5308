"""The quarter's review and 动态补齐: at each quarter's end the township's staff propose cards
through the real endpoint and confirm every red one (the post is vacated, its cases move up); a
vacated or initially vacant post gets a new lead ``refill_after_days`` later (PUT …/lead)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from .arrivals import ZONE
from .city import SURNAMES, GIVEN

LEAD_LEVELS = ("neighbourhood", "group", "area")
REFILL_PREFIX = "19998"  # refilled leads' phones: inside the simulated range, apart from the city's


def quarter_ends(start: date, days: int) -> list[tuple[date, str]]:
    out, end = [], start + timedelta(days=days)
    for year in range(start.year, end.year + 1):
        for q, (month, day) in enumerate(((3, 31), (6, 30), (9, 30), (12, 31)), start=1):
            d = date(year, month, day)
            if start <= d < end:
                out.append((d, f"{year}Q{q}"))
    return out


def schedule(engine, org, start: date, days: int) -> None:
    for day, quarter in quarter_ends(start, days):
        for code in org.hoods:
            engine.at(datetime.combine(day, time(17), ZONE), review, engine, org, code, quarter)
    first = datetime.combine(start, time(9), ZONE) + timedelta(days=engine.behaviour["refill_after_days"])
    for unit in list(org.units.values()):
        if unit.level in LEAD_LEVELS and unit.lead is None:
            engine.at(first, refill, engine, org, unit.id)


def review(engine, org, code: str, quarter: str) -> None:
    staff = engine.sim.headers("staff", code, name="镇综治中心")
    cards = engine.sim.call("POST", f"/api/v1/townships/{code}/reviews", staff, json={"quarter": quarter}, ok=(200, 201))
    standings = engine.sim.call("GET", f"/api/v1/townships/{code}/standings?quarter={quarter}", staff)
    rows = standings.get("items", standings) if isinstance(standings, dict) else standings
    engine.points[quarter] = engine.points.get(quarter, 0) + round(sum(r.get("points", 0) or 0 for r in rows), 1)
    for card in cards:
        engine.cards[card["proposed"]] = engine.cards.get(card["proposed"], 0) + 1
        if card["proposed"] == "red":
            _decide(engine, org, code, staff, card)


def _decide(engine, org, code: str, staff: dict, card: dict) -> None:
    """Staff confirm a proposed red card with ``red_confirm_share`` (the rest they change to yellow)."""
    confirm = engine.rng("red", card["unit_id"], card["quarter"]).random() < engine.behaviour["red_confirm_share"]
    body = {"card": "red" if confirm else "yellow", "note": "季度研判确认红牌，终止任职" if confirm else "改为黄牌，限期整改"}
    answer = engine.sim.call("POST", f"/api/v1/townships/{code}/cards/{card.get('id') or card['_id']}/decision", staff,
                             json=body)
    unit = org.units.get(card["unit_id"])
    if (answer.get("vacated") or {}).get("post_vacated") and unit:
        engine.cards["red_confirmed"] = engine.cards.get("red_confirmed", 0) + 1
        unit.lead = None
        if unit.id in org.hoods[code]:
            org.hoods[code].remove(unit.id)
        when = engine.sim.clock.now() + timedelta(days=engine.behaviour["refill_after_days"])
        engine.at(when, refill, engine, org, unit.id)


def refill(engine, org, unit_id: str) -> None:
    unit = org.units[unit_id]
    if unit.lead is not None:
        return
    engine.refilled += 1
    rng = engine.rng("refill", unit_id, engine.refilled)
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(2))
    staff = engine.sim.headers("staff", unit.township, name="镇综治中心")
    engine.sim.call("PUT", f"/api/v1/townships/{unit.township}/units/{unit_id}/lead", staff,
                    json={"name": name, "phone": f"{REFILL_PREFIX}{engine.refilled:06d}"})
    unit.lead = name
    if unit.level == "neighbourhood":
        mine = engine.sim.call("GET", "/api/v1/my/households", engine.sim.headers("lead", unit.township, unit_id, name))
        unit.households = [(h["household_id"], h.get("address")) for h in mine]
        org.hoods[unit.township].append(unit_id)
