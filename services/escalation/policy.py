"""A department's clocks: time to accept (签收), time to finish (办结), the warning point, the return window.

Resolved from three layers, the nearest winning field by field: the department's own setting, the
city's setting (the "global" one for all of a city's departments), and the defaults below. Written
in the SLA policy's text form ("1wd", "36h"); working days follow China's official calendar
(shared.domain.workdays), so a limit set before National Day ends after it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from shared.domain.workdays import DURATION_PATTERN, Duration

DEFAULTS: dict[str, Any] = {
    "accept": "1wd",          # 签收: one working day
    "finish": "10wd",         # 办结: two working weeks
    "warn_at": 0.75,          # warn at three quarters of each limit
    "return_window": "1wd",   # 退单 only within one working day of the assignment
}
_MAX_WORKING_DAYS = 250


@dataclass(frozen=True)
class ClockPolicy:
    accept: Duration
    finish: Duration
    warn_at: float
    return_window: Duration

    @staticmethod
    def from_text(text: Mapping) -> "ClockPolicy":
        """The policy as a part recorded it (as_text), e.g. to restart its clocks after a ruling."""
        return ClockPolicy(accept=Duration.parse(text["accept"]), finish=Duration.parse(text["finish"]),
                           warn_at=float(text["warn_at"]), return_window=Duration.parse(text["return_window"]))

    def as_text(self) -> dict:
        return {"accept": str(self.accept), "finish": str(self.finish), "warn_at": self.warn_at,
                "return_window": str(self.return_window)}


class DurationText(fields.String):
    """A Duration in text form; validated on load, kept as text in documents."""

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": DURATION_PATTERN, **(kwargs.get("metadata") or {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            duration = Duration.parse(text)
        except ValueError as exc:
            raise ValidationError(f"时长格式应为数字加单位（s、m、h、d、wd），例如 1wd、36h：{exc}") from exc
        if duration.is_zero:
            raise ValidationError("时长必须大于0")
        limit = _MAX_WORKING_DAYS if duration.unit == "working_days" else None
        if limit and duration.amount > limit:
            raise ValidationError(f"不能超过{limit}个工作日")
        if duration.unit != "working_days" and duration.amount * {"seconds": 1, "minutes": 60, "hours": 3600,
                                                                   "days": 86400}[duration.unit] > 366 * 86400:
            raise ValidationError("不能超过一年")
        return str(duration)


class ClockPolicyIn(Schema):
    """Any subset of the fields: what is left out comes from the next layer."""

    class Meta:
        unknown = RAISE

    accept = DurationText(metadata={"example": "1wd", "description": "签收时限"})
    finish = DurationText(metadata={"example": "10wd", "description": "办结时限（自交办起算）"})
    warn_at = fields.Float(validate=validate.Range(min=0, max=1, min_inclusive=False, max_inclusive=False),
                           metadata={"example": 0.75, "description": "预警点：时限的比例",
                                     "exclusiveMinimum": True, "exclusiveMaximum": True})
    return_window = DurationText(metadata={"example": "1wd", "description": "可退单的时限（自交办起算）"})


def effective(city: Mapping | None, department: Mapping | None) -> ClockPolicy:
    merged = dict(DEFAULTS)
    for layer in ((city or {}).get("sla"), (department or {}).get("sla")):
        merged.update({k: v for k, v in (layer or {}).items() if v is not None})
    return ClockPolicy.from_text(merged)
