"""A recording fake of dispatch's org directory: the few reads the chain and the policies make.

Units are plain dicts shaped as OrgRepository stores them (``_id``, ``level``, ``name``,
``parent_id``, ``lead``); townships are documents with an optional ``policy`` and a ``version``.
Every call that changes something is recorded in ``calls``.
"""
from __future__ import annotations

from services.dispatch.org import township_unit_id


class FakeTownships:
    def __init__(self, org: "FakeOrg"):
        self.org = org

    def upsert(self, doc: dict) -> dict:
        doc = dict(doc)
        current = self.org.townships_by_code.get(doc["_id"])
        doc["version"] = current["version"] + 1 if current else 1
        self.org.townships_by_code[doc["_id"]] = doc
        self.org.calls.append(("upsert_township", doc["_id"]))
        return doc


class FakeOrg:
    def __init__(self, units: list[dict] = (), townships: list[dict] = ()):
        self.units = {u["_id"]: u for u in units}
        self.townships_by_code = {t["_id"]: dict(t) for t in townships}
        self.townships = FakeTownships(self)
        self.calls: list[tuple] = []

    def unit(self, unit_id: str) -> dict | None:
        return self.units.get(unit_id)

    def township(self, code: str) -> dict | None:
        return self.townships_by_code.get(code)

    def ensure_township(self, code: str, name: str, city: str | None = None) -> dict:
        self.calls.append(("ensure_township", code))
        self.units.setdefault(township_unit_id(code), {"_id": township_unit_id(code), "level": "township",
                                                       "name": name, "parent_id": None, "township": code})
        return self.townships_by_code.setdefault(code, {"_id": code, "name": name, "version": 1})
