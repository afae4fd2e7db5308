"""What pages show people, as plain text: times in the local (China) time, without the web framework."""
from __future__ import annotations

from datetime import datetime

from shared.clock import parse_iso
from shared.domain.localtime import local_zone


def local_time(value: str | datetime | None, with_year: bool = False) -> str:
    """``2026-11-02T01:00:00+00:00`` → ``11月2日 09:00`` in the local zone (China time); '' for None."""
    if not value:
        return ""
    at = parse_iso(value) if isinstance(value, str) else value
    at = at.astimezone(local_zone())
    text = f"{at.month}月{at.day}日 {at:%H:%M}"
    return f"{at.year}年{text}" if with_year else text


def local_iso(value: str | datetime | None) -> str:
    """The machine-readable form of the same moment, for ``<time datetime=…>``."""
    if not value:
        return ""
    at = parse_iso(value) if isinstance(value, str) else value
    return at.astimezone(local_zone()).isoformat(timespec="minutes")
