"""Leads by phone, for sign-in: a lookup rebuilt from the org whenever a township's posts change
(``org.contacts_changed``, which a roster import, a red card and a filled post all emit). Only a
keyed hash of the phone is kept here."""
from __future__ import annotations

from shared.domain import phones
from shared.domain.levels import COLLECTIVE_LEVELS
from shared.domain.signin_codes import phone_key
from shared.storage import Index, Store

# A person who holds several posts signs in to the lowest one (the one closest to residents).
LEVEL_ORDER = ("neighbourhood", "group", "area", "village", "township")


class LeadDirectory:
    def __init__(self, store: Store, org, secret: str):
        self.org = org
        self.secret = secret
        self.entries = store.collection("lead_phones", [Index.on("township"), Index.on("phone_key"),
                                                         Index.on("wecom_id")])

    def rebuild(self, township: str) -> None:
        wanted = {}
        for unit in self.org.tree(township):
            phone = phones.mobile((unit.get("lead") or {}).get("phone"))
            if not phone or unit["level"] in COLLECTIVE_LEVELS:
                continue
            key = phone_key(self.secret, phone)
            wanted[f"{key}:{unit['_id']}"] = {"_id": f"{key}:{unit['_id']}", "township": township, "phone_key": key,
                                              "unit_id": unit["_id"], "level": unit["level"],
                                              "name": unit["lead"].get("name"), "wecom_id": unit["lead"].get("wecom_id")}
        for old in self.entries.find({"township": township}):
            if old["_id"] not in wanted:
                self.entries.delete(old["_id"])
        for doc in wanted.values():
            self.entries.upsert(doc)

    def lead_for(self, key: str, *, wecom_id: str | None = None, township: str | None = None) -> dict | None:
        found = self.entries.find({"wecom_id": wecom_id} if wecom_id else {"phone_key": key}, limit=50)
        found = [e for e in found if township is None or e["township"] == township]
        found.sort(key=lambda e: (LEVEL_ORDER.index(e["level"]) if e["level"] in LEVEL_ORDER else 99, e["_id"]))
        return found[0] if found else None
