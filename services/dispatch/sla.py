"""The "0211" SLA policy: how long each level of the chain has, per tier.

Shaoshan's rule (0211): common questions answered by a bot in 0 s, general problems
get a result in 2 days, harder ones in 1 week, complex ones a progress report within
1 month. A case carries one tier; at every level it climbs (邻 → 组 → 片 → 村 → 镇, then a
city department, handled by the escalation service) it gets a time to **accept** and a
time to **resolve**, both counted from its assignment at that level, plus a warning
point at ``warn_at`` of each. The resident's overall **promise** is tracked on its own:
a level's share running out escalates the case, the promise running out is reported.

Pure module: no I/O, no clock; every time is passed in and returned as aware UTC.

## Default policy

Cells are `accept / resolve` after assignment at that level; `wd` counts China's working
days (holidays and 调休 make-up days), `d`/`h` are calendar time. Warnings at 0.75 of
each duration.

| tier | promise | neighbourhood 邻 | group 组 | area 片 | village 村 | township 镇 |
|---|---|---|---|---|---|---|
| instant 常见问题 | 0s | 1h / 4h | 1h / 4h | 2h / 8h | 4h / 1wd | 4h / 1wd |
| general 一般问题 | 2wd | 2h / 0.25wd | 2h / 0.25wd | 4h / 0.5wd | 4h / 1wd | 8h / 2wd |
| difficult 较难问题 | 5wd | 4h / 0.5wd | 4h / 0.5wd | 8h / 1wd | 8h / 3wd | 1wd / 5wd |
| complex 复杂问题 | 30d, then progress every 30d | 8h / 1wd | 8h / 1wd | 1wd / 2wd | 1wd / 5wd | 1wd / 10wd |

Why these numbers:

- *instant*: the bot answers at once (promise 0s, no timer); the level shares apply when
  the resident still wants a person to answer, so they are short.
- *general* and *difficult*: the resolve shares of 邻+组+片+村 add up to the promise
  (0.25+0.25+0.5+1 = 2wd; 0.5+0.5+1+3 = 5wd), so a case solved inside the village keeps
  it. The township's share lies beyond; by then the resident has been told.
- *difficult* uses 5wd ("1 week" = one working week: 7 calendar days in an ordinary week,
  but a report made before National Day is not due in the middle of the holiday).
- *complex*: 邻→村 take 9wd and the township 10wd more, about 27 calendar days, so a case
  that climbs the whole chain reaches a department before the first progress report
  (30d) is due; after that a progress report is due every 30d until it is solved.
- Accepting is a tap in the mini-program, so the lower levels' accept times are calendar
  hours; resolving needs offices and workers, so it counts working days.

| category | 名称 | tier |
|---|---|---|
| environment | 环境卫生 | general |
| road | 道路交通 | difficult |
| water | 供水排水 | general |
| power | 供电 | general |
| dispute | 矛盾纠纷 | difficult |
| hazard | 安全隐患 | general |
| housing | 住房物业 | difficult |
| policy | 政策咨询 | instant |
| social | 社会保障 | difficult |
| other | 其他 | general |

No category is *complex* by default: a lead or the township reclassifies a case when it
turns out to need several departments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, post_load, validate

from shared.domain.categories import CATEGORIES, TIERS
from shared.domain.levels import DEPARTMENT
from shared.domain.levels import CHAIN_LEVELS as LEVELS
from shared.domain.localtime import local_zone
from shared.domain.workdays import DURATION_PATTERN, Duration, add

DEFAULT_WARN_AT = 0.75
# Tiers whose promise is a recurring progress report rather than a result.
PROGRESS_TIERS = frozenset({"complex"})
# Only the bot-answered tier may promise "at once".
ZERO_PROMISE_TIERS = frozenset({"instant"})


@dataclass(frozen=True)
class LevelPolicy:
    accept: Duration
    resolve: Duration
    warn_at: float = DEFAULT_WARN_AT


@dataclass(frozen=True)
class PauseLimits:
    """How long, in total, and how often a case of a tier may be paused (挂起, services/dispatch/pausing.py)."""
    max_total: Duration
    max_count: int


# Pause caps per tier (total paused time over the case's life, number of pauses); see docs/leads-and-staff-api.md.
DEFAULT_PAUSE = {
    "instant": {"max_total": "3wd", "max_count": 2},
    "general": {"max_total": "3wd", "max_count": 2},
    "difficult": {"max_total": "5wd", "max_count": 3},
    "complex": {"max_total": "30d", "max_count": 3},
}
MAX_PAUSES = 10


def default_pause(tier: str) -> PauseLimits:
    raw = DEFAULT_PAUSE.get(tier, DEFAULT_PAUSE["general"])
    return PauseLimits(Duration.parse(raw["max_total"]), raw["max_count"])


@dataclass(frozen=True)
class TierPolicy:
    promise: Duration
    levels: dict[str, LevelPolicy]
    progress_every: Duration | None = None
    pause: PauseLimits | None = None


@dataclass
class SlaPolicy:
    tiers: dict[str, TierPolicy]
    category_tiers: dict[str, str]
    levels: tuple[str, ...] = field(default=LEVELS)


@dataclass(frozen=True)
class LevelDeadlines:
    accept_due: datetime
    resolve_due: datetime
    warn_accept_at: datetime
    warn_resolve_at: datetime


# The default policy as data, in the same text form an edited policy arrives in.
def _levels(*pairs: tuple[str, str]) -> dict[str, dict[str, Any]]:
    return {
        level: {"accept": accept, "resolve": resolve, "warn_at": DEFAULT_WARN_AT}
        for level, (accept, resolve) in zip(LEVELS, pairs, strict=True)
    }


DEFAULT_POLICY: dict[str, Any] = {
    "levels": list(LEVELS),
    "tiers": {
        "instant": {
            "pause": dict(DEFAULT_PAUSE["instant"]),
            "promise": "0s",
            "progress_every": None,
            "levels": _levels(("1h", "4h"), ("1h", "4h"), ("2h", "8h"), ("4h", "1wd"), ("4h", "1wd")),
        },
        "general": {
            "pause": dict(DEFAULT_PAUSE["general"]),
            "promise": "2wd",
            "progress_every": None,
            "levels": _levels(
                ("2h", "0.25wd"), ("2h", "0.25wd"), ("4h", "0.5wd"), ("4h", "1wd"), ("8h", "2wd")
            ),
        },
        "difficult": {
            "pause": dict(DEFAULT_PAUSE["difficult"]),
            "promise": "5wd",
            "progress_every": None,
            "levels": _levels(
                ("4h", "0.5wd"), ("4h", "0.5wd"), ("8h", "1wd"), ("8h", "3wd"), ("1wd", "5wd")
            ),
        },
        "complex": {
            "pause": dict(DEFAULT_PAUSE["complex"]),
            "promise": "30d",
            "progress_every": "30d",
            "levels": _levels(
                ("8h", "1wd"), ("8h", "1wd"), ("1wd", "2wd"), ("1wd", "5wd"), ("1wd", "10wd")
            ),
        },
    },
    "category_tiers": {
        "environment": "general",
        "road": "difficult",
        "water": "general",
        "power": "general",
        "dispute": "difficult",
        "hazard": "general",
        "housing": "difficult",
        "policy": "instant",
        "social": "difficult",
        "other": "general",
    },
}


# ---------------------------------------------------------------------------
# Validation and (de)serialisation

# A limit longer than a year is a typo, and would overflow datetime arithmetic long
# before it meant anything.
_MAX_DAYS = {"seconds": 366 * 86400, "minutes": 366 * 1440, "hours": 366 * 24, "days": 366}
_MAX_WORKING_DAYS = 250



class DurationField(fields.Field):
    """A Duration written as text ("2wd", "36h"); ``positive`` rejects zero."""

    def __init__(self, *, positive: bool = True, **kwargs: Any) -> None:
        # Documented as what it reads (apispec copies these into the OpenAPI property).
        kwargs["metadata"] = {"type": "string", "pattern": DURATION_PATTERN, "example": "2wd",
                              **(kwargs.get("metadata") or {})}
        super().__init__(**kwargs)
        self.positive = positive

    def _serialize(self, value: Duration | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Duration:
        try:
            duration = Duration.parse(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if self.positive and duration.is_zero:
            raise ValidationError(f"duration must be positive, got {value!r}")
        _check_not_absurd(duration)
        return duration


def _check_not_absurd(duration: Duration) -> None:
    if duration.unit == "working_days":
        if duration.amount > _MAX_WORKING_DAYS:
            raise ValidationError(f"duration {duration} exceeds {_MAX_WORKING_DAYS}wd")
    elif duration.amount > _MAX_DAYS[duration.unit]:
        raise ValidationError(f"duration {duration} exceeds one year")


_LEVELS_ERROR = "levels are fixed: " + ", ".join(LEVELS)


class LevelPolicySchema(Schema):
    accept = DurationField(required=True)
    resolve = DurationField(required=True)
    warn_at = fields.Float(
        load_default=DEFAULT_WARN_AT,
        validate=validate.Range(min=0, max=1, min_inclusive=False, max_inclusive=False),
        metadata={"exclusiveMinimum": True, "exclusiveMaximum": True},
    )

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> LevelPolicy:
        return LevelPolicy(**data)


# One required field per level, so a missing or unknown level is reported by name.
_TierLevelsSchema = Schema.from_dict(
    {level: fields.Nested(LevelPolicySchema, required=True) for level in LEVELS},
    name="TierLevelsSchema",
)


class PauseLimitsSchema(Schema):
    max_total = DurationField(required=True, metadata={"description": "一件工单累计最长挂起时间", "example": "3wd"})
    max_count = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_PAUSES),
                               metadata={"description": "一件工单最多挂起次数（0 = 不允许挂起）"})

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> PauseLimits:
        return PauseLimits(**data)


def _tier_schema(tier: str) -> type[Schema]:
    """Schema for one tier: whether it may promise 0s and must report progress differ."""
    needs_progress = tier in PROGRESS_TIERS
    progress = (
        DurationField(required=True)
        if needs_progress
        else DurationField(allow_none=True, load_default=None)
    )
    return Schema.from_dict(
        {
            "promise": DurationField(required=True, positive=tier not in ZERO_PROMISE_TIERS),
            "progress_every": progress,
            "levels": fields.Nested(_TierLevelsSchema, required=True),
            # Optional for policies stored before pausing existed: the tier's defaults then.
            "pause": fields.Nested(PauseLimitsSchema, load_default=lambda: default_pause(tier)),
        },
        name=f"{tier.capitalize()}TierSchema",
    )


_TiersSchema = Schema.from_dict(
    {tier: fields.Nested(_tier_schema(tier), required=True) for tier in TIERS},
    name="TiersSchema",
)

_CategoryTiersSchema = Schema.from_dict(
    {
        category: fields.String(required=True, validate=validate.OneOf(TIERS))
        for category in CATEGORIES
    },
    name="CategoryTiersSchema",
)


class SlaPolicySchema(Schema):
    """Validates an edited policy; unknown keys are rejected (marshmallow's RAISE default)."""

    levels = fields.List(
        fields.String(),
        load_default=lambda: list(LEVELS),
        validate=validate.Equal(list(LEVELS), error=_LEVELS_ERROR),
    )
    tiers = fields.Nested(_TiersSchema, required=True)
    category_tiers = fields.Nested(_CategoryTiersSchema, required=True)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> SlaPolicy:
        tiers = {
            name: TierPolicy(
                promise=raw["promise"],
                levels=dict(raw["levels"]),
                progress_every=raw.get("progress_every"),
                pause=raw.get("pause") or default_pause(name),
            )
            for name, raw in data["tiers"].items()
        }
        return SlaPolicy(
            tiers=tiers,
            category_tiers=dict(data["category_tiers"]),
            levels=tuple(data["levels"]),
        )


def policy_from_dict(d: Mapping[str, Any]) -> SlaPolicy:
    """Load and validate a policy; raises marshmallow.ValidationError naming each bad field."""
    return SlaPolicySchema().load(d)


def policy_to_dict(p: SlaPolicy) -> dict[str, Any]:
    """The policy as JSON-able data (durations as text); ``policy_from_dict`` reads it back."""
    return SlaPolicySchema().dump(p)


def default_policy() -> SlaPolicy:
    return policy_from_dict(DEFAULT_POLICY)


# ---------------------------------------------------------------------------
# Queries


def _tier(policy: SlaPolicy, tier: str) -> TierPolicy:
    try:
        return policy.tiers[tier]
    except KeyError:
        raise ValueError(f"unknown SLA tier {tier!r}; expected one of {', '.join(TIERS)}") from None


def _level(tier_policy: TierPolicy, level: str) -> LevelPolicy:
    try:
        return tier_policy.levels[level]
    except KeyError:
        raise ValueError(
            f"no SLA for level {level!r}; expected one of {', '.join(LEVELS)}"
        ) from None


def deadlines(
    policy: SlaPolicy,
    tier: str,
    level: str,
    assigned_at: datetime,
    tz: str | ZoneInfo | None = None,
) -> LevelDeadlines:
    """Due and warning times for a case assigned at ``level`` at ``assigned_at``.

    A warning point is the duration scaled by ``warn_at`` in its own unit (0.75 of 2wd
    is 1.5wd), not ``warn_at`` of the calendar span: a span that crosses a long holiday
    would otherwise warn while the holiday is still running and most working time is left.
    """
    # The zone is part of the key: a process may be configured to another one (SANZHANG_TIMEZONE).
    return _level_deadlines(_level(_tier(policy, tier), level), assigned_at, tz if tz is not None else local_zone())


@lru_cache(maxsize=4096)
def _level_deadlines(level_policy: LevelPolicy, assigned_at: datetime, tz: str | ZoneInfo | None) -> LevelDeadlines:
    # A pure function of hashable values (the calendar is fixed at build time): a burst of breaches
    # escalates many cases to the same level at the same instant (one per claim, firing.py), and
    # working out four working-day deadlines was a tenth of each firing (issue 16).
    warn_at = level_policy.warn_at
    return LevelDeadlines(
        accept_due=add(assigned_at, level_policy.accept, tz),
        resolve_due=add(assigned_at, level_policy.resolve, tz),
        warn_accept_at=add(assigned_at, level_policy.accept.scaled(warn_at), tz),
        warn_resolve_at=add(assigned_at, level_policy.resolve.scaled(warn_at), tz),
    )


def promise_due(
    policy: SlaPolicy, tier: str, reported_at: datetime, tz: str | ZoneInfo | None = None
) -> datetime:
    """When the resident's promise falls due: a result, or for *complex* the first progress report."""
    return add(reported_at, _tier(policy, tier).promise, tz)


def next_progress_due(
    policy: SlaPolicy, tier: str, last_report_at: datetime, tz: str | ZoneInfo | None = None
) -> datetime | None:
    """When the next progress report is due after one given at ``last_report_at``; None if the tier has none."""
    every = _tier(policy, tier).progress_every
    return None if every is None else add(last_report_at, every, tz)


_CHAIN = (*LEVELS, DEPARTMENT)


def next_level(level: str) -> str | None:
    """The level a case escalates to: township → department, department → None."""
    try:
        index = _CHAIN.index(level)
    except ValueError:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(_CHAIN)}") from None
    return _CHAIN[index + 1] if index + 1 < len(_CHAIN) else None


def pause_limits(policy: SlaPolicy, tier: str) -> PauseLimits:
    return _tier(policy, tier).pause or default_pause(tier)


def tier_for(policy: SlaPolicy, category: str) -> str:
    try:
        return policy.category_tiers[category]
    except KeyError:
        raise ValueError(
            f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}"
        ) from None
