"""What staff read: the delivery log and the dead letters of a township."""
from __future__ import annotations


class DeliveryLog:
    """Part of NotifyService (services/notify/service.py), which holds the stores, channels and settings."""

    def log_for(self, township: str | None, case_id: str | None, limit: int, skip: int,
                status: str | None = None) -> list[dict]:
        where = {}
        if township:
            where["township"] = township
        if case_id:
            where["case_id"] = case_id
        if status:
            where["status"] = status
        return self.deliveries.find(where, sort=[("created_at", 1)], limit=limit, skip=skip)

    def dead_letters(self, township: str, case_id: str | None, limit: int, skip: int) -> list[dict]:
        where = {"township": township}
        if case_id:
            where["case_id"] = case_id
        return self.dead.find(where, limit=limit, skip=skip)
