"""Injected time. Only entry points build a SystemClock; everything below takes a Clock."""
from __future__ import annotations

import threading
from functools import lru_cache
from datetime import datetime, timedelta, timezone
from typing import Protocol

ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FakeClock:
    """A clock tests move by hand; thread-safe because consumers run on threads."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when

    def advance(self, **delta) -> datetime:
        with self._lock:
            self._now = self._now + timedelta(**delta)
            return self._now


def iso(when: datetime) -> str:
    """Fixed-width UTC text, so stored times sort and compare as strings in every adapter."""
    if when.tzinfo is None:  # local time, whatever the process's zone is now: never remembered
        return _utc_text(when.astimezone(timezone.utc))
    return _aware_iso(when)


@lru_cache(maxsize=1024)  # one change writes the same instant a dozen times (timeline, events, deadlines)
def _aware_iso(when: datetime) -> str:
    # Equal aware datetimes are the same instant, so they share one text whatever their zone.
    return _utc_text(when if when.tzinfo is timezone.utc else when.astimezone(timezone.utc))


def _utc_text(when: datetime) -> str:
    # ISO_FORMAT spelled out with %-formatting: strftime took 8 % of an SLA sweep (issue 16).
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (when.year, when.month, when.day, when.hour, when.minute,
                                                   when.second, when.microsecond)


def parse_iso(text: str) -> datetime:
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
