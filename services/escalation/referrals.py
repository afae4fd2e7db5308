"""Cases referred to the city's departments, recorded as they arrive from dispatch."""
from __future__ import annotations

from shared.clock import Clock, iso
from shared.storage import DuplicateKey, Index, Store


class Referrals:
    def __init__(self, store: Store, clock: Clock):
        self.collection = store.collection("referrals", [Index.on("township"), Index.on("status")])
        self.clock = clock

    def on_case_referred(self, event: dict) -> None:
        payload = event["payload"]
        try:
            self.collection.insert({"_id": payload["case_id"], "township": event["township"],
                                    "report_id": payload["report_id"], "category": payload["category"],
                                    "tier": payload["tier"], "reason": payload.get("reason"),
                                    "status": "awaiting_assignment", "referred_at": event["occurred_at"],
                                    "received_at": iso(self.clock.now())})
        except DuplicateKey:
            pass  # redelivery
