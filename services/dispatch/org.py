"""The org tree (township → village → area → group → neighbourhood → household) as dispatch stores it."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import asdict
from typing import Iterator

from shared.aggregates import Aggregates
from shared.clock import Clock, iso
from shared.domain import phones
from shared.domain.addresses import normalise_address
from shared.domain.ids import new_id, township_unit_id
from shared.domain.spreadsheet import StalePreview
from shared.domain.levels import COLLECTIVE_LEVELS, POST_TITLES
from shared.events import make_event
from shared.storage import Index, Store

from shared.domain.reachability import routes_for, unreachable_posts

from .contacts import preview_posts, workbook_contacts
from .roster import Org, load_roster
from .roster_preview import RosterPlan, describe


class OrgRepository:
    def __init__(self, store: Store, clock: Clock, wake, routes_json: str | None = None):
        self.clock = clock
        self._memo = threading.local()  # reading_once's units and townships, per thread
        # notify's SANZHANG_NOTIFY_ROUTES: which channels reach a lead or the staff, for the posts
        # nobody could reach (shared/domain/reachability.py); unset means the console.
        self.routes_json = routes_json
        self.townships = store.collection("townships", [Index.on("city")])
        self.units = store.collection("units", [Index.on("township"), Index.on("township", "level"),
                                                 Index.on("parent_id")])
        self.households = store.collection("households", [Index.on("township"),
                                                           Index.on("township", "address_key"),
                                                           Index.on("township", "phone"),
                                                           # visits (supervision): due sweeps, overdue lists
                                                           Index.on("next_visit_due"),
                                                           Index.on("township", "visit_overdue_since"),
                                                           Index.on("neighbourhood_id")])
        self.imports = Aggregates(store.collection("roster_imports", [Index.on("township"), Index.on("outbox_due")]),
                                  clock, wake)
        # Village committees' and township staff's contacts (contact_book.py), one document a person.
        self.post_contacts = store.collection("post_contacts", [Index.on("township"), Index.on("unit_id")])

    # -- townships ------------------------------------------------------------------------------
    def ensure_township(self, code: str, name: str, city: str | None = None) -> dict:
        current = self.townships.get(code) or {}
        doc = {**current, "_id": code, "township": code, "name": name, "city": city or code[:6]}
        self.townships.upsert(doc)
        self.units.upsert({"_id": township_unit_id(code), "township": code, "level": "township",
                           "name": name, "parent_id": None, "lead": current.get("staff_contact")})
        return doc

    def township(self, code: str) -> dict | None:
        return self._read_once("townships", self.townships, code)

    # -- roster import --------------------------------------------------------------------------
    def import_roster(self, township: str, data: bytes, filename: str, actor: str, base: str | None = None) -> dict:
        """Parses and validates the whole file (and its contacts sheet) first; only a good file touches
        the store. With a preview's ``base``, refuses (StalePreview) if the org changed since that preview."""
        loaded = load_roster(township, data, filename)
        contacts = workbook_contacts(loaded.org, data, self._name(township))
        if not self.townships.get(township):
            self.ensure_township(township, township)
        return {**self.store_org(loaded.org, actor, base, contacts), "notices": loaded.notices}

    def preview_roster(self, township: str, data: bytes, filename: str) -> dict:
        """The dry run: what importing the file would change, nothing written; raises RosterError as
        import_roster does, so a file that previews cleanly imports cleanly."""
        loaded = load_roster(township, data, filename)
        contacts = workbook_contacts(loaded.org, data, self._name(township))
        plan = self.plan(loaded.org)
        preview = describe(plan, self._unreachable_after(plan, contacts))
        return {"dry_run": True, "township": township, **preview, "notices": loaded.notices}

    def _name(self, township: str) -> str:
        return (self.townships.get(township) or {}).get("name") or township

    def _unreachable_after(self, plan: RosterPlan, contacts: list | None) -> list[dict]:
        """Posts nobody could reach once the file is imported: its leads (a post kept vacant by a red
        card stays a vacancy), and the contacts sheet's people, or the stored contacts without one."""
        township = plan.org.township
        if contacts is None:
            contacts = [_StoredContact(c) for c in self.post_contacts.find({"township": township})]
        vacant = {d["_id"] for d in plan.units if not d.get("lead")}
        posts = [p if p["unit_id"] not in vacant or p["level"] in COLLECTIVE_LEVELS
                 else {**p, "people": [x for x in p["people"] if x.get("precedence") != 1]}
                 for p in preview_posts(plan.org, contacts, self._name(township))]
        return unreachable_posts(posts, routes_for(self.routes_json, township))

    def plan(self, org: Org) -> RosterPlan:
        """The unit and household documents the org would leave, beside the stored ones."""
        township = org.township
        now = self.clock.now()
        current_units = {u["_id"]: u for u in self.units.find({"township": township})}
        current_households = {h["_id"]: h for h in self.households.find({"township": township})}
        units = []
        for unit in org.units.values():
            lead = asdict(unit.lead) if unit.lead else None
            doc = {"_id": unit.id, "township": township, "level": unit.level, "name": unit.name,
                   "parent_id": unit.parent_id or township_unit_id(township), "lead": lead}
            doc.update(_vacancy_kept(current_units.get(unit.id), lead))
            units.append(doc)
        # A household moved to another 邻 gets a new id (ids follow the path); its visits go with it.
        by_person = {(h["head"], h.get("address_key")): h for h in current_households.values()}
        households = [_household_doc(hh, current_households.get(hh.id)
                                     or by_person.get((hh.head, normalise_address(hh.address))), now)
                      for hh in org.households]
        return RosterPlan(org, current_units, current_households, units, households)

    def store_org(self, org: Org, actor: str, base: str | None = None, contacts: list | None = None) -> dict:
        """Writes what differs from the store; the same org again writes nothing (``changed`` False,
        no import recorded, no event). Posts and households gone from the new file are gone from
        the org (re-import = the truth). ``contacts`` (a contacts sheet's rows) replace the stored
        village committees' and township staff's contacts; None leaves them as they are."""
        township = org.township
        plan = self.plan(org)
        if base is not None and base != plan.base:
            raise StalePreview()
        counts = {level: len(org.units_at(level)) for level in ("village", "area", "group", "neighbourhood")}
        counts["household"] = len(org.households)
        counts["vacancies"] = sum(1 for u in org.units.values()
                                  if u.lead is None and u.level not in COLLECTIVE_LEVELS)
        removed_units, removed_households = plan.removed_units(), plan.removed_households()
        counts["removed_units"] = len(removed_units)
        counts["removed_households"] = len(removed_households)
        contacts_changed = contacts is not None and self.post_contacts_differ(township, contacts)
        if not plan.changed and not contacts_changed:
            return {"import_id": None, "township": township, "changed": False, "counts": counts}
        for doc in plan.unit_writes():
            self.units.upsert(doc)
        for doc in plan.household_writes():
            self.households.upsert(doc)
        for unit_id in removed_units:
            self.units.delete(unit_id)
        for hh_id in removed_households:
            self.households.delete(hh_id)
        if contacts is not None:
            counts["contacts"] = self.replace_post_contacts(township, contacts)
        self._drop_orphan_contacts(township)
        import_id = new_id()
        now = self.clock.now()
        event = make_event("org.contacts_changed", township, self.directory(township), at=now, correlation_id=None)
        self.imports.add({"_id": import_id, "township": township, "at": iso(now), "actor": actor,
                          "counts": counts}, [event])
        return {"import_id": import_id, "township": township, "changed": True, "counts": counts}

    # -- posts: a red card vacates one, the township fills it (动态补齐) -------------------------
    def vacate(self, unit_id: str, *, actor: str, reason: str, card_id: str | None = None) -> dict:
        """Empties a lead's post: routing skips it until a re-import names someone else, or staff fill it."""
        unit = self.units.get(unit_id)
        if unit is None or unit["level"] in COLLECTIVE_LEVELS:
            raise LookupError(unit_id)
        lead = unit.get("lead") or {}
        at = iso(self.clock.now())
        removed = list(unit.get("removed_leads") or [])
        if lead.get("name"):
            removed.append({"name": lead.get("name"), "phone": lead.get("phone"), "at": at, "card_id": card_id})
        self.units.upsert({**unit, "lead": None, "removed_leads": removed[-20:],
                           "vacated": {"at": at, "by": actor, "reason": reason, "card_id": card_id,
                                       "lead_name": lead.get("name")}})
        self._contacts_changed(unit["township"], actor, {"vacated": unit_id})
        return self.units.get(unit_id)

    def fill_post(self, unit_id: str, lead: dict, *, actor: str) -> dict:
        unit = self.units.get(unit_id)
        if unit is None or unit["level"] in COLLECTIVE_LEVELS:
            raise LookupError(unit_id)
        doc = {k: v for k, v in unit.items() if k != "vacated"}
        doc["lead"] = {"name": lead["name"], "phone": phones.normalise(lead["phone"]) if lead.get("phone") else None,
                       "wecom_id": lead.get("wecom_id")}
        doc["filled"] = {"at": iso(self.clock.now()), "by": actor}
        self.units.upsert(doc)
        self._contacts_changed(unit["township"], actor, {"filled": unit_id})
        return self.units.get(unit_id)

    def publish_contacts(self, township: str, actor: str, counts: dict) -> None:
        """Re-publishes the township's directory to notify after its contacts changed (contact_book.py)."""
        self._contacts_changed(township, actor, counts)

    def _contacts_changed(self, township: str, actor: str, counts: dict) -> None:
        now = self.clock.now()
        event = make_event("org.contacts_changed", township, self.directory(township), at=now, correlation_id=None)
        self.imports.add({"_id": new_id(), "township": township, "at": iso(now), "actor": actor,
                          "kind": "post", "counts": counts}, [event])

    def contacts(self, township: str) -> list[dict]:
        """Every post's holder, for notify's directory."""
        out = []
        for unit in self.units.find({"township": township}):
            lead = unit.get("lead") or {}
            if lead.get("name") or lead.get("phone"):
                out.append({"unit_id": unit["_id"], "level": unit["level"], "unit_name": unit["name"],
                            "name": lead.get("name"), "phone": lead.get("phone"),
                            "wecom_id": lead.get("wecom_id"), "parent_id": unit.get("parent_id")})
        return out

    def directory(self, township: str) -> dict:
        """The org.contacts_changed payload: the leads (as before) and every post with its people."""
        return {"leads": self.contacts(township), "posts": self.posts(township)}

    def posts(self, township: str) -> list[dict]:
        """Every unit of the township with the people who answer for it, first to contact first:
        a lead post's lead, a village committee's and the township's contacts by precedence."""
        people: dict[str, list] = {}
        for c in sorted(self.post_contacts.find({"township": township}), key=lambda c: (c["precedence"], c["name"])):
            people.setdefault(c["unit_id"], []).append(
                {"contact_id": c["_id"], "name": c["name"], "duty": c.get("duty"), "phone": c.get("phone"),
                 "wecom_id": c.get("wecom_id"), "precedence": c["precedence"]})
        out = []
        for unit in sorted(self.units.find({"township": township}), key=lambda u: (_DEPTH.get(u["level"], 9), u["name"])):
            lead = unit.get("lead") or {}
            own = [{"name": lead.get("name"), "duty": POST_TITLES.get(unit["level"]), "phone": lead.get("phone"),
                    "wecom_id": lead.get("wecom_id"), "precedence": 1}] if lead.get("name") else []
            out.append({"unit_id": unit["_id"], "level": unit["level"], "unit_name": unit["name"],
                        "parent_id": unit.get("parent_id"), "people": own + people.get(unit["_id"], [])})
        return out

    def replace_post_contacts(self, township: str, contacts: list) -> int:
        """The township's contacts become exactly `contacts` (PostContact rows): a re-import is the truth."""
        keep = set()
        for c in contacts:
            self.post_contacts.upsert(contact_doc(c))
            keep.add(c.id)
        for old in self.post_contacts.find({"township": township}):
            if old["_id"] not in keep:
                self.post_contacts.delete(old["_id"])
        return len(keep)

    def post_contacts_differ(self, township: str, contacts: list) -> bool:
        stored = {c["_id"]: {k: v for k, v in c.items() if k != "version"}
                  for c in self.post_contacts.find({"township": township})}
        return stored != {c.id: contact_doc(c) for c in contacts}

    def _drop_orphan_contacts(self, township: str) -> None:
        """A village gone from the roster takes its committee's contacts with it."""
        units = {u["_id"] for u in self.units.find({"township": township})}
        for c in self.post_contacts.find({"township": township}):
            if c["unit_id"] not in units:
                self.post_contacts.delete(c["_id"])

    # -- look-ups -------------------------------------------------------------------------------
    def locate(self, township: str, household_id: str | None, address: str | None,
               phone: str | None) -> dict | None:
        """Any one of household, address or registered phone finds the household."""
        if household_id:
            hh = self.households.get(household_id)
            if hh and hh["township"] == township:
                return hh
        if address:
            found = self.households.find({"township": township, "address_key": normalise_address(address)}, limit=1)
            if found:
                return found[0]
        if phone:
            # The roster's normaliser stored the number, so the same one reads it (landlines with a dash).
            found = self.households.find({"township": township, "phone": phones.normalise(phone) or phone}, limit=1)
            if found:
                return found[0]
        return None

    def unit(self, unit_id: str) -> dict | None:
        return self._read_once("units", self.units, unit_id)

    @contextmanager
    def reading_once(self):
        """Within the block this thread reads each unit and township once: an SLA sweep's batch
        climbs the same few chains hundreds of times (issue 16). What is read here is not changed."""
        if getattr(self._memo, "docs", None) is not None:
            yield
            return
        self._memo.docs = {}
        try:
            yield
        finally:
            self._memo.docs = None

    def _read_once(self, kind: str, collection, doc_id: str) -> dict | None:
        docs = getattr(self._memo, "docs", None)
        if docs is None:
            return collection.get(doc_id)
        key = (kind, doc_id)
        if key not in docs:
            found = collection.get(doc_id)
            if found is None:
                return None  # not remembered: the caller may create it (Escalator.township_unit)
            docs[key] = found
        return docs[key]

    def chain_from(self, unit_id: str) -> list[dict]:
        """The unit and every unit above it, up to and including the township."""
        return list(self.climb(unit_id))

    def climb(self, unit_id: str) -> Iterator[dict]:
        """chain_from one unit at a time, each read only when the caller asks for it: routing stops
        at the first post with a lead — most often the 邻 itself — where chain_from read all five
        up to the township (issue 16)."""
        current = self.units.get(unit_id)
        while current is not None:
            yield current
            current = self.units.get(current["parent_id"]) if current.get("parent_id") else None

    def tree(self, township: str) -> list[dict]:
        return self.units.find({"township": township})


_DEPTH = {"township": 0, "village": 1, "area": 2, "group": 3, "neighbourhood": 4}


def contact_doc(c) -> dict:
    return {"_id": c.id, "township": c.township, "unit_id": c.unit_id, "level": c.level, "unit_name": c.unit_name,
            "name": c.name, "duty": c.duty, "phone": c.phone, "wecom_id": c.wecom_id, "precedence": c.precedence}


# Key households (寡、孤、独: the roster's 重点户) are contacted by their 邻长 weekly, others monthly.
VISIT_DAYS = {True: 7, False: 30}


def _same_person(lead: dict | None, removed: dict) -> bool:
    if not lead:
        return False
    if lead.get("phone") and removed.get("phone"):
        return phones.normalise(lead["phone"]) == phones.normalise(removed["phone"])
    return bool(lead.get("name")) and lead.get("name") == removed.get("name")


def _vacancy_kept(current: dict | None, lead: dict | None) -> dict:
    """A post emptied by a red card stays empty when a re-import still names the removed lead;
    a new name fills it (动态补齐)."""
    if not current:
        return {}
    kept = {"removed_leads": current["removed_leads"]} if current.get("removed_leads") else {}
    if current.get("vacated") and (not lead or any(_same_person(lead, r) for r in current.get("removed_leads", []))):
        kept.update(lead=None, vacated=current["vacated"])
    return kept


def _household_doc(hh, current: dict | None, now) -> dict:
    return {"_id": hh.id, "township": hh.township, "neighbourhood_id": hh.neighbourhood_id,
            "head": hh.head, "address": hh.address, "address_key": normalise_address(hh.address),
            "phone": phones.normalise(hh.phone) if hh.phone else None, "key_household": hh.key_household,
            **_visits_kept(current, hh.key_household, now)}


def _visits_kept(current: dict | None, key_household: bool, now) -> dict:
    """A re-import keeps each household's visit record; a new one is first due one interval from now."""
    from datetime import timedelta

    # visit_due is the real due time; next_visit_due is its timer (a sweep's claim leases it forward).
    interval = timedelta(days=VISIT_DAYS[bool(key_household)])
    if not current or not current.get("visit_due"):
        due = iso(now + interval)
        return {"visit_due": due, "next_visit_due": due, "last_visit_at": None, "visit_overdue_since": None}
    due, timer = current["visit_due"], current.get("next_visit_due")
    if current.get("last_visit_at"):  # a household newly marked key is due a week after its last visit
        from shared.clock import parse_iso
        sooner = iso(parse_iso(current["last_visit_at"]) + interval)
        if sooner < due:
            due = timer = sooner
    return {"visit_due": due, "next_visit_due": timer, "last_visit_at": current.get("last_visit_at"),
            "visit_overdue_since": current.get("visit_overdue_since")}


def assignee_of(unit: dict) -> dict:
    lead = unit.get("lead") or {}
    return {"level": unit["level"], "unit_id": unit["_id"], "unit_name": unit["name"],
            "lead_id": unit["_id"] if lead.get("name") else None,
            "lead_name": lead.get("name") or (POST_TITLES[unit["level"]]
                                              if unit["level"] in COLLECTIVE_LEVELS else None),
            "lead_phone_masked": phones.mask(lead.get("phone"))}


def has_lead(unit: dict) -> bool:
    if unit["level"] in COLLECTIVE_LEVELS:
        return True  # the committee or the township's staff hold what reaches them
    lead = unit.get("lead") or {}
    return bool(lead.get("name"))


class _StoredContact:
    """A stored contact document read as the contacts sheet's rows are (preview_posts takes either)."""

    def __init__(self, doc: dict):
        self.unit_id, self.name, self.duty = doc["unit_id"], doc["name"], doc.get("duty")
        self.phone, self.wecom_id, self.precedence = doc.get("phone"), doc.get("wecom_id"), doc["precedence"]
