"""A township's resident-message policy (resident_policy.py), and the record of what each resident
was first told, so "once" holds across redeliveries and replicas."""
from __future__ import annotations

from shared.clock import iso
from shared.storage import DuplicateKey

from .resident_policy import DEFAULT_POLICY, ONCE, POLICY_TEXT, RESIDENT_NEWS, tell


class ResidentMessages:
    """Part of NotifyService (services/notify/service.py), which holds the stores, channels and settings."""

    def resident_policy(self, township: str) -> dict:
        doc = self.resident_policies.get(township) or {}
        policy = doc.get("policy") or DEFAULT_POLICY
        return {"township": township, "policy": policy, "description": POLICY_TEXT[policy],
                "updated_at": doc.get("updated_at"), "updated_by": doc.get("updated_by")}

    def set_resident_policy(self, township: str, policy: str, actor: str | None) -> dict:
        self.resident_policies.upsert({"_id": township, "township": township, "policy": policy,
                                       "updated_at": iso(self.clock.now()), "updated_by": actor})
        return self.resident_policy(township)

    def _resident_news(self, event: dict, township: str, report_id: str) -> list:
        """The resident of ``report_id`` as recipient of ``event``, if the township's policy tells it."""
        news, how = RESIDENT_NEWS.get(event["type"], (None, None))
        known = self.residents.get(report_id)
        if news is None or (known is not None and not (known.get("phone") or known.get("openid"))):
            return []   # no news for residents, or a reporter who left no phone (Open311): nothing to text
        first = self._first_told(township, report_id, news, event["id"]) if how == ONCE else None
        if not tell(self.resident_policy(township)["policy"], event["type"], first, event["id"]):
            return []
        return self._resident(township, report_id)

    def _first_told(self, township: str, report_id: str, news: str, event_id: str) -> str:
        """The event that first carried ``news`` for this report (this one, if none did before)."""
        slot = f"{report_id}:{news}"
        try:
            self.resident_told.insert({"_id": slot, "township": township, "event_id": event_id,
                                       "at": iso(self.clock.now())})
            return event_id
        except DuplicateKey:
            return (self.resident_told.get(slot) or {}).get("event_id") or event_id
