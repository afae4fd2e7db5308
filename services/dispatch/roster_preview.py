"""What a roster import would change, before anything is written (the dry run), and what it writes.

``RosterPlan`` holds the stored units and households and the documents an import would leave: a
document identical to the stored one is not written, so importing the same file again writes
nothing and says so (``changed`` is False). ``describe`` turns a plan into what a township
administrator checks before committing: posts added or removed, leads changed, vacancies,
households added, removed, moved between posts or changed, and posts nobody could reach.

Phones appear masked (138****0003), as everywhere a person reads them.
"""
from __future__ import annotations

from dataclasses import dataclass

from shared.domain import phones
from shared.domain.levels import COLLECTIVE_LEVELS, POST_TITLES
from shared.domain.spreadsheet import content_base

from .roster import Org

MAX_LISTED = 200  # per list: the counts are whole, the lists show the first ones
LEVEL_NAMES = {"village": "村(社区)", "area": "片区", "group": "村民小组", "neighbourhood": "邻"}


@dataclass
class RosterPlan:
    org: Org
    current_units: dict[str, dict]
    current_households: dict[str, dict]
    units: list[dict]
    households: list[dict]

    def unit_writes(self) -> list[dict]:
        return [doc for doc in self.units if not same_doc(self.current_units.get(doc["_id"]), doc)]

    def household_writes(self) -> list[dict]:
        return [doc for doc in self.households if not same_doc(self.current_households.get(doc["_id"]), doc)]

    def removed_units(self) -> list[str]:
        kept = {doc["_id"] for doc in self.units}
        return [uid for uid, u in self.current_units.items() if u["level"] != "township" and uid not in kept]

    def removed_households(self) -> list[str]:
        kept = {doc["_id"] for doc in self.households}
        return [hid for hid in self.current_households if hid not in kept]

    @property
    def base(self) -> str:
        """A token for the stored org the plan was made against (what a roster owns: names, parents,
        leads, households; not the visit timers a sweep moves). A commit given a preview's base
        refuses when it no longer matches."""
        units = sorted((u["_id"], u.get("name"), u.get("parent_id"), u.get("lead"), bool(u.get("vacated")))
                       for u in self.current_units.values() if u["level"] != "township")
        households = sorted((h["_id"], h.get("neighbourhood_id"), h.get("phone"), bool(h.get("key_household")))
                            for h in self.current_households.values())
        return content_base([units, households])

    @property
    def changed(self) -> bool:
        return bool(self.unit_writes() or self.household_writes() or self.removed_units()
                    or self.removed_households())


def same_doc(current: dict | None, doc: dict) -> bool:
    """The stored document already says what ``doc`` says (the store's version aside)."""
    if current is None:
        return False
    return {k: v for k, v in current.items() if k != "version"} == doc


def describe(plan: RosterPlan, unreachable: list[dict]) -> dict:
    """The preview: counts of every kind of change, and the first MAX_LISTED of each. ``unreachable``:
    the posts nobody could reach after the import (shared.domain.reachability.unreachable_posts)."""
    paths = _Paths(plan.current_units, plan.units)
    changes = {
        "posts_added": [paths.post(d) for d in plan.units if d["_id"] not in plan.current_units],
        "posts_removed": [paths.post(plan.current_units[uid]) for uid in plan.removed_units()],
        "leads_changed": [_lead_change(paths, plan.current_units[d["_id"]], d) for d in plan.units
                          if d["_id"] in plan.current_units and _lead_key(plan.current_units[d["_id"]]) != _lead_key(d)],
        "vacancies": [paths.post(d) for d in plan.units if d["level"] not in COLLECTIVE_LEVELS and not d.get("lead")],
        **_household_changes(plan, paths),
        "unreachable_posts": [{**row, "level_name": LEVEL_NAMES.get(row["level"], row["level"]),
                               "path": paths.of(row["unit_id"]) or row.get("unit_name")} for row in unreachable],
    }
    summary = {key: len(items) for key, items in changes.items()}
    return {"changed": plan.changed, "base": plan.base, "summary": summary,
            "changes": {key: items[:MAX_LISTED] for key, items in changes.items()}}


def _household_changes(plan: RosterPlan, paths: "_Paths") -> dict:
    """Added, removed, moved (the same 户主 and 地址 under another 邻: its id follows the path) and
    changed (phone or 重点户) households."""
    new = {doc["_id"]: doc for doc in plan.households}
    added = [d for hid, d in new.items() if hid not in plan.current_households]
    removed = [plan.current_households[hid] for hid in plan.removed_households()]
    gone_by_key = {_household_key(d): d for d in removed}
    moved, really_added = [], []
    for doc in added:
        before = gone_by_key.pop(_household_key(doc), None)
        if before is None:
            really_added.append(doc)
        else:
            moved.append({**_household(doc), "from": paths.of(before["neighbourhood_id"]),
                          "to": paths.of(doc["neighbourhood_id"])})
    changed = [_household(d) for hid, d in new.items() if hid in plan.current_households
               and _household_facts(plan.current_households[hid]) != _household_facts(d)]
    return {"households_added": [{**_household(d), "path": paths.of(d["neighbourhood_id"])} for d in really_added],
            "households_removed": [{**_household(d), "path": paths.of(d["neighbourhood_id"])}
                                   for d in gone_by_key.values()],
            "households_moved": moved, "households_changed": changed}


def _household_key(doc: dict) -> tuple:
    return doc["head"], doc.get("address_key") or doc["address"]


def _household(doc: dict) -> dict:
    return {"household_id": doc["_id"], "head": doc["head"], "address": doc["address"]}


def _household_facts(doc: dict) -> tuple:
    return doc.get("phone"), bool(doc.get("key_household"))


def _lead_key(doc: dict) -> tuple:
    lead = doc.get("lead") or {}
    return lead.get("name"), lead.get("phone"), lead.get("wecom_id")


def _lead_view(doc: dict) -> dict | None:
    lead = doc.get("lead") or {}
    if not lead.get("name"):
        return None
    return {"name": lead["name"], "phone": phones.mask(lead.get("phone")), "wecom_id": lead.get("wecom_id")}


def _lead_change(paths: "_Paths", before: dict, after: dict) -> dict:
    return {**paths.post(after), "before": _lead_view(before), "after": _lead_view(after),
            "kept_vacant": bool(after.get("vacated"))}


class _Paths:
    """Names a unit by its path, 韶山村/一片/一组/第1邻, from the new units or the stored ones."""

    def __init__(self, current: dict[str, dict], planned: list[dict]):
        self.units = {**current, **{doc["_id"]: doc for doc in planned}}

    def of(self, unit_id: str | None) -> str:
        names = []
        while unit_id in self.units and self.units[unit_id]["level"] != "township":
            names.append(self.units[unit_id]["name"])
            unit_id = self.units[unit_id].get("parent_id")
        return "/".join(reversed(names))

    def post(self, doc: dict) -> dict:
        return {"unit_id": doc["_id"], "level": doc["level"], "level_name": LEVEL_NAMES.get(doc["level"], doc["level"]),
                "title": POST_TITLES.get(doc["level"], ""), "path": self.of(doc["_id"])}
