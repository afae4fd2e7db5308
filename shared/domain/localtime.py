"""The local time zone: where a day, a holiday and a quiet hour begin and end.

Configured once, from the SANZHANG_TIMEZONE setting, by the process's entry point
(shared.runtime); everything else asks ``local_zone()``. A process that never configures it
(a unit test, a bench script) runs on China's time, which is what the deployment uses.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Asia/Shanghai"

_zone = ZoneInfo(DEFAULT_ZONE)


def local_zone() -> ZoneInfo:
    return _zone


def configure(name: str | None) -> ZoneInfo:
    """Sets the zone for the whole process; a blank name keeps the default. Unknown names raise ValueError."""
    global _zone
    try:
        _zone = ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"SANZHANG_TIMEZONE: unknown time zone {name!r}") from exc
    return _zone
