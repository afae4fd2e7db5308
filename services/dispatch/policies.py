"""Each township's SLA policy: the 0211 defaults until its staff or the operator change it.

Stored as text-form data on the township document (what policy_to_dict writes), so the policy
that opened a case can be read back and compared; a change applies to assignments made after it.
"""
from __future__ import annotations

import threading

from . import sla
from .org import OrgRepository


class Policies:
    def __init__(self, org: OrgRepository):
        self.org = org
        self._default = sla.default_policy()
        # Parsing a policy costs more than reading it; the document's version says when to reparse.
        self._parsed: dict[str, tuple[int, sla.SlaPolicy]] = {}
        self._lock = threading.Lock()

    def get(self, township: str) -> sla.SlaPolicy:
        doc = self.org.township(township)
        if not doc or not doc.get("policy"):
            return self._default
        with self._lock:
            cached = self._parsed.get(township)
        if cached and cached[0] == doc["version"]:
            return cached[1]
        policy = sla.policy_from_dict(doc["policy"])
        with self._lock:
            self._parsed[township] = (doc["version"], policy)
        return policy

    def is_default(self, township: str) -> bool:
        doc = self.org.township(township)
        return not (doc and doc.get("policy"))

    def put(self, township: str, policy: sla.SlaPolicy, actor: str) -> sla.SlaPolicy:
        """Stores a validated policy; the township must exist."""
        doc = self.org.township(township)
        if doc is None:
            raise LookupError(township)
        doc["policy"] = sla.policy_to_dict(policy)
        doc["policy_changed_by"] = actor
        self.org.townships.upsert(doc)
        return policy
