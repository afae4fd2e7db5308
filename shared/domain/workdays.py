"""Working-day arithmetic in China's official calendar, and SLA durations.

Pure functions: no I/O and no clock. Every time passed in or returned is a
timezone-aware datetime; results are in UTC. Working days are counted in the
local calendar (shared.domain.localtime, Asia/Shanghai by default) because a holiday is a local date.

Holidays and make-up working days (调休) come from the ``chinese_calendar``
package. For a year it does not cover yet, we fall back to Monday–Friday and
log one warning per year, so an outdated package degrades loudly instead of
stopping every timer.
"""

from __future__ import annotations

import functools

import logging
import math
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar

from .localtime import local_zone

log = logging.getLogger(__name__)


# A whole-day limit can never span more calendar days than this; a larger
# count is a configuration error, not something to loop on for minutes.
_MAX_SCAN_DAYS = 366 * 20

_warned_years: set[int] = set()
_warned_lock = threading.Lock()


@functools.lru_cache(maxsize=8192)
def is_working_day(d: date) -> bool:
    """True if ``d`` is a working day in mainland China (holidays and 调休 included).

    Cached: chinese_calendar scans its whole holiday table on every call (max() over the keys),
    which was a tenth of a consumer's time per case."""
    try:
        return chinese_calendar.is_workday(d)
    except NotImplementedError:
        _warn_uncovered_year(d.year)
        return d.weekday() < 5


def _warn_uncovered_year(year: int) -> None:
    with _warned_lock:
        if year in _warned_years:
            return
        _warned_years.add(year)
    log.warning(
        "chinese_calendar has no holiday data for %d; counting Monday-Friday as "
        "working days. Upgrade the chinesecalendar package.",
        year,
    )


def _zone(tz: str | ZoneInfo | None) -> ZoneInfo:
    if tz is None:
        return local_zone()
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def _require_aware(moment: datetime) -> None:
    # A naive time is ambiguous (server-local? UTC?); guessing would shift deadlines by hours.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {moment!r}")


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _nth_working_day(first: date, n: int, include_first: bool) -> date:
    """The n-th working day counting from ``first`` (inclusive or exclusive)."""
    day = first if include_first else first + timedelta(days=1)
    seen = 0
    for _ in range(_MAX_SCAN_DAYS):
        if is_working_day(day):
            seen += 1
            if seen == n:
                return day
        day += timedelta(days=1)
    raise ValueError(f"{n} working days is beyond any sensible limit")


def _next_working_day(after: date) -> date:
    return _nth_working_day(after, 1, include_first=False)


def add_working_days(start: datetime, n: int | float, tz: str | ZoneInfo | None = None) -> datetime:
    """The deadline ``n`` working days after ``start``, as an aware UTC datetime.

    A working day is a whole local calendar day in ``tz`` (no office hours).

    * ``start`` on a working day: the deadline is the same local time of day on
      the n-th following working day. Wed 2026-09-30 10:00 + 2 → Fri 2026-10-09
      10:00 (Oct 1–7 are National Day, Oct 8–9 are working days).
    * ``start`` on a non-working day: the clock starts with the next working
      day, and the deadline is the *end* of the n-th working day, returned as
      the local midnight that closes it (start-of-next-day semantics, so
      ``now >= deadline`` means overdue without a 23:59:59.999999 fudge).
      With n < 1 the clock's landing point is the midnight that *opens* the
      first working day.
    * A fractional part is added as that fraction of 24 hours after landing on
      the whole-day deadline: 1.5 from Wed 10:00 → Thu 10:00 + 12 h. Simple and
      monotonic (more days never gives an earlier deadline), which warning
      points rely on; it does not try to skip the nights or holidays the
      fraction itself may cross.
    """
    _require_aware(start)
    if not isinstance(n, (int, float)) or isinstance(n, bool) or not math.isfinite(n) or n < 0:
        raise ValueError(f"working days must be a finite number >= 0, got {n!r}")
    zone = _zone(tz)
    whole = math.floor(n)
    fraction = n - whole
    landing = _land(start.astimezone(zone), whole, zone)
    # Add in UTC: aware arithmetic within one zone is wall-clock, not elapsed, time.
    return landing.astimezone(timezone.utc) + timedelta(days=fraction)


def _land(local_start: datetime, whole: int, zone: ZoneInfo) -> datetime:
    start_day = local_start.date()
    if is_working_day(start_day):
        if whole == 0:
            return local_start
        day = _nth_working_day(start_day, whole, include_first=False)
        # Re-attach the wall-clock time so a UTC-offset change between the two
        # days (none in Shanghai today, but tz is a parameter) keeps local time.
        return datetime.combine(day, local_start.timetz().replace(tzinfo=None), tzinfo=zone)
    if whole == 0:
        return _local_midnight(_next_working_day(start_day), zone)
    last = _nth_working_day(start_day, whole, include_first=False)
    return _local_midnight(last + timedelta(days=1), zone)


Unit = Literal["seconds", "minutes", "hours", "days", "working_days"]

# Suffix ↔ unit; "wd" must be tried before "d", hence the order in the regex.
_SUFFIX_TO_UNIT: dict[str, Unit] = {
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "wd": "working_days",
}
_UNIT_TO_SUFFIX = {unit: suffix for suffix, unit in _SUFFIX_TO_UNIT.items()}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(wd|s|m|h|d)\s*$")
# The same rule for documents (OpenAPI patterns of every duration field).
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(wd|s|m|h|d)\s*$"


@dataclass(frozen=True)
class Duration:
    """A length of time; ``working_days`` counts China's working days, the rest are exact.

    Written as a number and a suffix: ``90s``, ``30m``, ``36h``, ``7d``, ``2wd``.
    """

    amount: float
    unit: Unit

    def __post_init__(self) -> None:
        if self.unit not in _UNIT_TO_SUFFIX:
            raise ValueError(f"unknown duration unit {self.unit!r}")
        amount = self.amount
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise ValueError(f"duration amount must be a number, got {amount!r}")
        if not math.isfinite(amount) or amount < 0:
            raise ValueError(f"duration amount must be finite and >= 0, got {amount!r}")
        # Normalise so Duration(2, "days") == Duration.parse("2d") and hashes alike.
        object.__setattr__(self, "amount", float(amount))

    @classmethod
    def parse(cls, text: str) -> "Duration":
        if not isinstance(text, str):
            raise ValueError(f"duration must be a string like '2wd', got {text!r}")
        match = _DURATION_RE.match(text)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}: expected a number and one of s, m, h, d, wd (e.g. '2wd')"
            )
        number, suffix = match.groups()
        return cls(float(number), _SUFFIX_TO_UNIT[suffix])

    def __str__(self) -> str:
        return f"{_format_amount(self.amount)}{_UNIT_TO_SUFFIX[self.unit]}"

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    def scaled(self, factor: float) -> "Duration":
        """This duration times ``factor``, in the same unit (used for warning points)."""
        return Duration(self.amount * factor, self.unit)


def _format_amount(amount: float) -> str:
    if amount.is_integer():
        return str(int(amount))
    # repr is the shortest text that round-trips; Decimal avoids '1e-05' forms the parser rejects.
    return format(Decimal(repr(amount)), "f")


_EXACT_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


def add(start: datetime, duration: Duration, tz: str | ZoneInfo | None = None) -> datetime:
    """``start`` plus ``duration`` as an aware UTC datetime; ``tz`` matters only for working days."""
    _require_aware(start)
    if duration.unit == "working_days":
        return add_working_days(start, duration.amount, tz)
    seconds = duration.amount * _EXACT_UNIT_SECONDS[duration.unit]
    # Add in UTC: aware arithmetic within one zone is wall-clock, not elapsed, time.
    return start.astimezone(timezone.utc) + timedelta(seconds=seconds)


# -- working time (pausing a case's clock) ----------------------------------------------------------
# A paused case's deadlines move by the *working* time its pause used: the seconds of the pause that
# fell on working days (whole local calendar days, as above). A pause over a weekend or a holiday
# costs nothing, so resuming on the next working day leaves the holder the time they had.

def working_seconds_between(start: datetime, end: datetime, tz: str | ZoneInfo | None = None) -> float:
    """Seconds of [start, end) that fall on working days; 0 when end is not after start."""
    _require_aware(start)
    _require_aware(end)
    zone = _zone(tz)
    moment, end = start.astimezone(zone), end.astimezone(zone)
    total = 0.0
    for _ in range(_MAX_SCAN_DAYS):
        if moment >= end:
            return total
        next_midnight = _local_midnight(moment.date() + timedelta(days=1), zone)
        stop = min(next_midnight, end)
        if is_working_day(moment.date()):
            total += (stop.astimezone(timezone.utc) - moment.astimezone(timezone.utc)).total_seconds()
        moment = stop
    raise ValueError("a span of more than twenty years is not a pause")


def add_working_seconds(start: datetime, seconds: float, tz: str | ZoneInfo | None = None) -> datetime:
    """The moment ``seconds`` of working time after ``start`` (non-working days are skipped), in UTC."""
    _require_aware(start)
    if seconds <= 0:
        return start.astimezone(timezone.utc)
    zone = _zone(tz)
    moment, left = start.astimezone(zone), float(seconds)
    for _ in range(_MAX_SCAN_DAYS):
        next_midnight = _local_midnight(moment.date() + timedelta(days=1), zone)
        if is_working_day(moment.date()):
            room = (next_midnight.astimezone(timezone.utc) - moment.astimezone(timezone.utc)).total_seconds()
            if left <= room:
                return moment.astimezone(timezone.utc) + timedelta(seconds=left)
            left -= room
        moment = next_midnight
    raise ValueError(f"{seconds} working seconds is beyond any sensible limit")
