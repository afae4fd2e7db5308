"""The quarterly review: blue / yellow / red cards (蓝牌 加强培训, 黄牌 督促整改, 红牌 终止任职).

``review`` proposes a card for every lead in post, from the quarter's ledger (points, overdue
visits) and stints (ratings, breaches), against the thresholds of the township's rule set: the
most severe card any of whose conditions holds. Township staff then confirm or change each
proposal; a confirmed red card vacates the post (the org's ``vacate``): routing skips it and the
cases it holds move up the chain at once, until the township fills the post again — a roster
re-import naming a new lead, or the fill endpoint (动态补齐).
"""
from __future__ import annotations

from datetime import datetime

from shared.aggregates import Aggregates, Unchanged
from shared.clock import Clock, iso
from shared.domain.ids import derived_id
from shared.domain.levels import LEAD_LEVELS, POST_TITLES
from shared.domain.localtime import local_zone
from shared.domain.statuses import OPEN_STATUSES
from shared.storage import Index, Metric, Store

from ..chain import Escalator
from ..org import OrgRepository
from ..transitions import Actor, WrongState
from .facts import lead_key
from .ledger import Ledger
from .rules import CARD_MEANINGS, CARD_NAMES, CARDS, Rules

CHOICES = (*CARDS, "none")


def quarter_bounds(quarter: str) -> tuple[str, str]:
    year, q = int(quarter[:4]), int(quarter[-1])
    start = datetime(year, 3 * q - 2, 1, tzinfo=local_zone())
    end = datetime(year + 1, 1, 1, tzinfo=local_zone()) if q == 4 else datetime(year, 3 * q + 1, 1, tzinfo=local_zone())
    return iso(start), iso(end)


def propose(figures: dict, thresholds: dict) -> tuple[str, list[str]]:
    """The card and the reasons, read from the rule set's thresholds (any condition suffices)."""
    for card in CARDS:
        rule = thresholds.get(card) or {}
        reasons = []
        if rule.get("points_below") is not None and figures["points"] < rule["points_below"]:
            reasons.append(f"季度积分{figures['points']:g}低于{rule['points_below']:g}")
        rate = figures["satisfaction_rate"]
        if (rule.get("satisfaction_below") is not None and rate is not None
                and figures["rated"] >= rule.get("min_rated", 1) and rate < rule["satisfaction_below"]):
            reasons.append(f"满意率{rate:.0%}低于{rule['satisfaction_below']:.0%}")
        if rule.get("breaches_at_least") is not None and figures["breaches"] >= rule["breaches_at_least"]:
            reasons.append(f"超时{figures['breaches']}次（≥{rule['breaches_at_least']}）")
        if (rule.get("overdue_visits_at_least") is not None
                and figures["overdue_visits"] >= rule["overdue_visits_at_least"]):
            reasons.append(f"走访超期{figures['overdue_visits']}户次（≥{rule['overdue_visits_at_least']}）")
        if reasons:
            return card, reasons
    return "none", []


class CardError(Exception):
    pass


class Cards:
    def __init__(self, store: Store, org: OrgRepository, ledger: Ledger, stints, rules: Rules,
                 cases: Aggregates, escalator: Escalator, clock: Clock):
        self.cards = store.collection("cards", [Index.on("township", "quarter"), Index.on("unit_id")])
        self.org = org
        self.ledger = ledger
        self.stints = stints
        self.rules = rules
        self.cases = cases
        self.escalator = escalator
        self.clock = clock

    def standings(self, township: str, quarter: str) -> list[dict]:
        """Every lead in post (and anyone else with entries this quarter), with the quarter's figures."""
        since, until = quarter_bounds(quarter)
        ledger = self.ledger.entries.aggregate(
            ["lead_key", "rule"], {"points": Metric.sum("points"), "n": Metric.count()},
            {"township": township, "quarter": quarter})
        stints = self.stints.aggregate(
            ["lead_key"], {"received": Metric.count(), "rated": Metric.sum("rated"),
                           "satisfied": Metric.sum("satisfied"), "breaches": Metric.sum("breach_count"),
                           "resolved": Metric.sum("resolved")},
            {"township": township, "assigned_at": {"$gte": since, "$lt": until}})
        leads: dict[str, dict] = {}
        units = self.org.tree(township)
        by_id = {u["_id"]: u for u in units}
        for unit in units:
            lead = unit.get("lead") or {}
            if unit["level"] in LEAD_LEVELS and lead.get("name"):
                key = lead_key(unit["level"], unit["_id"], lead["name"])
                leads[key] = {"lead_key": key, "unit_id": unit["_id"], "level": unit["level"],
                              "unit_name": unit["name"], "lead_name": lead["name"], "in_post": True}
        # Spending points (积分超市, exchanges.py) is not a mark against a lead: standings count what was earned.
        ledger = [row for row in ledger if row["rule"] not in ("exchange", "exchange_reversal")]
        for row in ledger:
            if row["lead_key"] not in leads:
                entry = self.ledger.entries.find({"township": township, "lead_key": row["lead_key"]}, limit=1)[0]
                leads[row["lead_key"]] = {"lead_key": row["lead_key"], "unit_id": entry["unit_id"],
                                          "level": entry["level"], "unit_name": entry["unit_name"],
                                          "lead_name": entry["lead_name"], "in_post": False}
        for lead in leads.values():
            lead.update(points=0, entries=0, overdue_visits=0, received=0, rated=0, satisfied=0, breaches=0,
                        resolved=0, path=self._path(by_id, lead["unit_id"]) or lead["unit_name"],
                        title=POST_TITLES.get(lead["level"], ""))
        for row in ledger:
            lead = leads[row["lead_key"]]
            lead["points"] += row["points"]
            lead["entries"] += row["n"]
            if row["rule"] == "visit_overdue":
                lead["overdue_visits"] += row["n"]
        for row in stints:
            if row["lead_key"] in leads:
                leads[row["lead_key"]].update({k: row[k] for k in ("received", "rated", "satisfied", "breaches",
                                                                      "resolved")})
        for lead in leads.values():
            lead["points"] = round(lead["points"], 2)
            lead["satisfaction_rate"] = round(lead["satisfied"] / lead["rated"], 4) if lead["rated"] else None
        return sorted(leads.values(), key=lambda l: (-l["points"], l["path"] or ""))

    @staticmethod
    def _path(units: dict, unit_id: str | None) -> str | None:
        names, unit = [], units.get(unit_id)
        while unit is not None and unit["level"] != "township":
            names.append(unit["name"])
            unit = units.get(unit.get("parent_id"))
        return "/".join(reversed(names)) or None

    def review(self, township: str, quarter: str, actor: str) -> list[dict]:
        """Proposes (or re-proposes) the quarter's cards; decided ones keep their decision."""
        thresholds = self.rules.get(township)["cards"]
        now = iso(self.clock.now())
        out = []
        for lead in self.standings(township, quarter):
            if not lead["in_post"]:
                continue
            card, reasons = propose(lead, thresholds)
            card_id = derived_id("card", township, quarter, lead["lead_key"])
            current = self.cards.get(card_id)
            doc = {**(current or {}), "_id": card_id, "township": township, "quarter": quarter,
                   "lead_key": lead["lead_key"], "unit_id": lead["unit_id"], "level": lead["level"],
                   "unit_name": lead["unit_name"], "path": lead["path"], "lead_name": lead["lead_name"],
                   "figures": {k: lead[k] for k in ("points", "received", "resolved", "rated", "satisfied",
                                                    "satisfaction_rate", "breaches", "overdue_visits")},
                   "proposed": card, "proposed_name": CARD_NAMES[card], "reasons": reasons,
                   "reviewed_at": now, "reviewed_by": actor}
            if not current or current.get("status") == "proposed":
                doc.update(status="proposed", final=None)
            self.cards.upsert(doc)
            out.append(doc)
        return sorted(out, key=lambda c: (CHOICES.index(c["final"] or c["proposed"]), c["path"] or ""))

    def list(self, township: str, quarter: str) -> list[dict]:
        docs = self.cards.find({"township": township, "quarter": quarter}, limit=5000)
        return sorted(docs, key=lambda c: (CHOICES.index(c.get("final") or c["proposed"]), c.get("path") or ""))

    def get(self, card_id: str) -> dict | None:
        return self.cards.get(card_id)

    def decide(self, card_id: str, card: str, note: str | None, actor: Actor) -> dict:
        doc = self.cards.get(card_id)
        if doc is None:
            raise LookupError(card_id)
        if doc["status"] != "proposed":
            raise CardError(f"该牌已{'确认' if doc['status'] == 'confirmed' else '调整'}为{CARD_NAMES[doc['final']]}，不能再改")
        now = self.clock.now()
        doc.update(final=card, final_name=CARD_NAMES[card], meaning=CARD_MEANINGS[card],
                   status="confirmed" if card == doc["proposed"] else "changed",
                   decided_by=actor.name, decided_at=iso(now), note=note)
        if card == "red":
            doc["vacated"] = self._remove(doc, actor, now)
        self.cards.upsert(doc)
        return self.cards.get(card_id)

    def _remove(self, card: dict, actor: Actor, now: datetime) -> dict:
        """红牌: the post is vacated and the cases it holds go up to the next holder now."""
        unit = self.org.unit(card["unit_id"])
        lead = (unit or {}).get("lead") or {}
        if unit is None or lead.get("name") != card["lead_name"]:
            return {"post_vacated": False, "reason": "该岗位已不由此人担任"}
        reason = f"{POST_TITLES[unit['level']]}{card['lead_name']}被亮红牌，终止任职（{card['quarter']}）"
        self.org.vacate(unit["_id"], actor=actor.name, reason=reason, card_id=card["_id"])
        moved = []
        for case in self.cases.collection.find({"unit_id": unit["_id"], "status": {"$in": list(OPEN_STATUSES)}},
                                               limit=5000):
            def change(c: dict):
                if c.get("unit_id") != unit["_id"] or c["status"] not in OPEN_STATUSES:
                    raise Unchanged
                return self.escalator.escalate(c, now, reason="岗位空缺：" + reason, actor=actor)
            try:
                self.cases.mutate(case["_id"], change)
                moved.append(case["_id"])
            except WrongState:
                continue
        return {"post_vacated": True, "unit_id": unit["_id"], "cases_moved": moved}
