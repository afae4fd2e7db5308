"""Quiet hours, the per-recipient rate limit window and the township's hourly SMS budget: counters
taken atomically by compare-and-set."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from shared.clock import iso
from shared.storage import DuplicateKey, VersionConflict

from .deliveries import MAX_CAS


class Limits:
    """Part of NotifyService (services/notify/service.py), which holds the stores, channels and settings."""

    def _quiet_until(self, now: datetime, doc: dict) -> datetime | None:
        s = self.settings
        if (doc.get("urgent") or not s.quiet.enabled or doc["recipient_kind"] not in s.quiet_kinds
                or doc["channel"] in s.exempt_channels):
            return None
        local = now.astimezone(s.timezone)
        t = local.time().replace(tzinfo=None)
        start, end = s.quiet.start, s.quiet.end
        if start < end:
            if not (start <= t < end):
                return None
            day = local.date()
        else:
            if not (t >= start or t < end):
                return None
            day = local.date() if t < end else local.date() + timedelta(days=1)
        return datetime.combine(day, end, tzinfo=s.timezone).astimezone(timezone.utc)

    def _window(self, now: datetime) -> tuple[int, datetime]:
        w = self.settings.rate_window
        start = int(now.timestamp()) // w * w
        return start, datetime.fromtimestamp(start + w, timezone.utc)

    def _take(self, counter_id: str, amount: int, limit: int, expires_at: datetime, *, force: bool = False) -> bool:
        """Adds `amount` to a counter unless that passes `limit`; atomic by compare-and-set."""
        for _ in range(MAX_CAS):
            current = self.counters.get(counter_id)
            count = current["count"] if current else 0
            if not force and count + amount > limit:
                return False
            try:
                if current is None:
                    self.counters.insert({"_id": counter_id, "count": amount, "carrier": None,
                                          "expires_at": iso(expires_at)})
                else:
                    self.counters.replace({**current, "count": count + amount}, current["version"])
                return True
            except (DuplicateKey, VersionConflict):
                continue
        raise VersionConflict(counter_id)

    def _rate_applies(self, doc: dict) -> bool:
        s = self.settings
        return s.rate_limit > 0 and doc["channel"] not in s.exempt_channels

    def _budget_counter(self, township: str, now: datetime) -> tuple[str, datetime]:
        hour = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
        return f"sms:{township}:{iso(hour)}", hour + timedelta(hours=1)
