"""Leads' visits to their households (联户走访): key households weekly, the others monthly.

Each household document (the org's ``households``) carries ``visit_due``, its timer
``next_visit_due`` (indexed, swept by a DueSweeper like an SLA timer), ``last_visit_at`` and
``visit_overdue_since``. A logged visit moves
the due time one interval past the visit; a due time passing without one marks the household
overdue (the board lists it), costs the 邻长 ``visit_overdue`` in the ledger (the cause is the
household and the missed due time, so a second sweep of the same miss adds nothing), and sets the
next due time one interval later — another missed interval costs again.

A visit that finds a problem becomes a report on the resident's behalf through intake's own path:
the lead's (or the board's) client POSTs ``/api/v1/reports`` with ``channel: "lead"`` and the
``household_id``, then logs the visit with the ``report_id`` it got back. intake stays the only
owner of reports (tracking numbers, the resident's view, rate limits), and the visit links to the
case that report opens (its id is derived from the report id).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from shared.clock import Clock, iso, parse_iso
from shared.domain.ids import case_id_for, new_id
from shared.storage import Index, Store, VersionConflict

from ..org import VISIT_DAYS, OrgRepository
from .ledger import Ledger

MODES = {"in_person": "上门走访", "phone": "电话联系", "wechat": "微信联系"}


class VisitError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class Visits:
    def __init__(self, store: Store, org: OrgRepository, ledger: Ledger, clock: Clock):
        self.org = org
        self.ledger = ledger
        self.clock = clock
        self.visits = store.collection("visits", [Index.on("township", "at"), Index.on("household_id"),
                                                  Index.on("unit_id")])

    @staticmethod
    def interval(household: dict) -> timedelta:
        return timedelta(days=VISIT_DAYS[bool(household.get("key_household"))])

    def _lead_of(self, household: dict) -> dict:
        """The household's 邻 (its post and whoever holds it now)."""
        return self.org.unit(household["neighbourhood_id"]) or {}

    def log(self, principal, body: dict) -> dict:
        household = self.org.households.get(body["household_id"])
        if household is None or not principal.sees(household["township"]):
            raise LookupError(body["household_id"])
        if principal.role == "lead" and principal.unit_id != household["neighbourhood_id"]:
            raise LookupError(body["household_id"])  # another 邻's household does not exist for this lead
        now = self.clock.now()
        at = body.get("at") or now
        if at > now + timedelta(minutes=5):
            raise VisitError("at", "走访时间不能晚于现在")
        unit = self._lead_of(household)
        lead = unit.get("lead") or {}
        at_s = iso(at)
        on_time = bool(household.get("visit_due") and at_s <= household["visit_due"])
        visit = {"_id": new_id(), "township": household["township"], "household_id": household["_id"],
                 "household_head": household.get("head"), "neighbourhood_id": household["neighbourhood_id"],
                 "unit_id": unit.get("_id"), "unit_name": unit.get("name"), "lead_name": lead.get("name"),
                 "by": principal.name or principal.role, "by_role": principal.role, "at": at_s,
                 "mode": body["mode"], "findings": body.get("findings"), "key_household": bool(household.get("key_household")),
                 "due_was": household.get("visit_due"), "on_time": on_time,
                 "report_id": body.get("report_id"),
                 "case_id": case_id_for(body["report_id"]) if body.get("report_id") else None}
        self.visits.insert(visit)
        self._visited(household["_id"], at)
        if on_time and lead.get("name"):
            self.ledger.record(household["township"], "visit_logged", cause="visit:" + visit["_id"],
                               cause_type="visit", at=at_s, level="neighbourhood", unit_id=unit["_id"],
                               unit_name=unit.get("name"), lead_name=lead.get("name"), note=MODES[body["mode"]])
        return visit

    def _visited(self, household_id: str, at: datetime) -> None:
        for _ in range(20):
            hh = self.org.households.get(household_id)
            if hh.get("last_visit_at") and hh["last_visit_at"] >= iso(at):
                return  # a later visit is already recorded
            due = iso(at + self.interval(hh))
            doc = {**hh, "last_visit_at": iso(at), "visit_due": due, "next_visit_due": due,
                   "visit_overdue_since": None}
            try:
                self.org.households.replace(doc, hh["version"])
                return
            except VersionConflict:
                continue

    def fire_due(self, claimed: dict) -> None:
        """DueSweeper's work on a household whose timer came: its claim leased ``next_visit_due``
        forward; ``visit_due`` still holds the real due time."""
        now = self.clock.now()
        for _ in range(20):
            hh = self.org.households.get(claimed["_id"])
            if hh is None:
                return
            due = hh.get("visit_due")
            if due is None or due > iso(now):  # visited meanwhile: the timer follows the new due time
                doc = {**hh, "next_visit_due": due}
            else:
                unit = self._lead_of(hh)
                lead = unit.get("lead") or {}
                if lead.get("name"):
                    kind = "重点户" if hh.get("key_household") else "联系户"
                    self.ledger.record(hh["township"], "visit_overdue", cause=f"visit-due:{hh['_id']}:{due}",
                                       cause_type="visit.overdue", at=due, level="neighbourhood",
                                       unit_id=unit["_id"], unit_name=unit.get("name"), lead_name=lead.get("name"),
                                       note=f"{kind}{hh.get('head')}走访超期")
                next_due = parse_iso(due) + self.interval(hh)
                while iso(next_due) <= iso(now):
                    next_due += self.interval(hh)
                doc = {**hh, "visit_due": iso(next_due), "next_visit_due": iso(next_due),
                       "visit_overdue_since": hh.get("visit_overdue_since") or due}
            try:
                self.org.households.replace(doc, hh["version"])
                return
            except VersionConflict:
                continue

    def overdue(self, township: str, limit: int = 500) -> list[dict]:
        docs = self.org.households.find({"township": township, "visit_overdue_since": {"$ne": None}},
                                        sort=[("visit_overdue_since", 1)], limit=limit)
        units = {u["_id"]: u for u in self.org.tree(township)}
        out = []
        for hh in docs:
            unit = units.get(hh["neighbourhood_id"]) or {}
            group = units.get(unit.get("parent_id")) or {}
            village = units.get((units.get(group.get("parent_id")) or {}).get("parent_id")) or {}
            out.append({"household_id": hh["_id"], "head": hh.get("head"), "address": hh.get("address"),
                        "key_household": bool(hh.get("key_household")), "overdue_since": hh["visit_overdue_since"],
                        "last_visit_at": hh.get("last_visit_at"), "visit_due": hh.get("visit_due"),
                        "neighbourhood": unit.get("name"), "group": group.get("name"), "village": village.get("name"),
                        "lead_name": (unit.get("lead") or {}).get("name"), "unit_id": unit.get("_id")})
        return out

    def households_of(self, principal) -> list[dict]:
        """A 邻长's households with their due times (key households first)."""
        docs = self.org.households.find({"neighbourhood_id": principal.unit_id}, limit=500)
        docs = [d for d in docs if principal.sees(d["township"])]
        return sorted(({"household_id": d["_id"], "head": d.get("head"), "address": d.get("address"),
                        "key_household": bool(d.get("key_household")), "visit_due": d.get("visit_due"),
                        "last_visit_at": d.get("last_visit_at"), "overdue_since": d.get("visit_overdue_since")}
                       for d in docs), key=lambda d: (not d["key_household"], d["visit_due"] or ""))

    def list(self, township: str, household_id: str | None = None, limit: int = 100) -> list[dict]:
        if household_id:
            docs = [v for v in self.visits.find({"household_id": household_id}, limit=500) if v["township"] == township]
            return sorted(docs, key=lambda v: v["at"], reverse=True)[:limit]
        return self.visits.find({"township": township}, sort=[("at", -1)], limit=limit)
