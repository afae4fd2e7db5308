"""What a simulation is given: the city's description and the people's behaviour, validated.

Both are plain JSON documents (a preset, or a file the user writes); a bad one is refused with the
field named (``SpecError.errors`` is marshmallow's ``{"field": ["message"]}`` shape), before anything
runs. The defaults are the Shaoshan article's figures (docs/simulation.md says where each comes from).
"""
from __future__ import annotations

import json
from pathlib import Path

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

CATEGORIES = ("environment", "road", "water", "power", "dispute", "hazard", "housing", "policy", "social", "other")
CHANNELS = ("mini_program", "wechat", "phone", "walk_in")
LEVELS = ("neighbourhood", "group", "area", "village", "township")
SHARE = validate.Range(min=0.0, max=1.0)
POSITIVE = validate.Range(min=0.0, min_inclusive=False)


class SpecError(ValueError):
    def __init__(self, what: str, errors: dict):
        self.what, self.errors = what, errors
        super().__init__(f"{what}: " + "; ".join(f"{k}: {v}" for k, v in _flat(errors)))


def _flat(errors, prefix=""):
    for key, value in errors.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flat(value, name + ".")
        else:
            yield name, " ".join(map(str, value)) if isinstance(value, list) else str(value)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class CitySchema(_Strict):
    """The city: counts of the org tree (the article's), the share of key households and vacancies."""
    code = fields.String(load_default="430382", validate=validate.Regexp(r"^\d{6}$", error="必须是6位行政区划代码"))
    name = fields.String(load_default="韶山市", validate=validate.Length(min=1, max=20))
    townships = fields.Integer(load_default=6, validate=validate.Range(min=1, max=40))
    villages = fields.Integer(load_default=48, validate=validate.Range(min=1))
    areas = fields.Integer(load_default=230, validate=validate.Range(min=1))
    groups = fields.Integer(load_default=1040, validate=validate.Range(min=1))
    neighbourhoods = fields.Integer(load_default=2663, validate=validate.Range(min=1))
    households = fields.Integer(load_default=38000, validate=validate.Range(min=1, max=200000))
    key_household_share = fields.Float(load_default=0.06, validate=SHARE)
    vacant_share = fields.Float(load_default=0.02, validate=SHARE)
    departments = fields.Integer(load_default=6, validate=validate.Range(min=1, max=12))

    @validates_schema
    def _nested_counts(self, data, **kwargs):
        order = ("townships", "villages", "areas", "groups", "neighbourhoods", "households")
        for upper, lower in zip(order, order[1:]):
            if data[lower] < data[upper]:
                raise ValidationError(f"不能少于 {upper}（{data[upper]}）：每个上级单位至少要有一个下级", lower)


class LevelSchema(_Strict):
    """One level's behaviour: how soon it accepts and resolves, how often it solves or passes it up."""
    accept_median_h = fields.Float(required=True, validate=POSITIVE)
    resolve_median_h = fields.Float(required=True, validate=POSITIVE)
    sigma = fields.Float(load_default=0.8, validate=validate.Range(min=0.0, max=3.0))
    resolve = fields.Float(required=True, validate=SHARE)
    escalate = fields.Float(required=True, validate=SHARE)

    @validates_schema
    def _shares(self, data, **kwargs):
        if data["resolve"] + data["escalate"] > 1.0 + 1e-9:
            raise ValidationError("resolve 与 escalate 之和不能超过 1（其余为拖着不办）", "escalate")


class BehaviourSchema(_Strict):
    """The year's activity and the people's behaviour (distributions stated in docs/simulation.md)."""
    reports_per_household_year = fields.Float(load_default=1250 / 38000, validate=POSITIVE)
    visits_per_household_year = fields.Float(load_default=48000 / 38000, validate=validate.Range(min=0.0))
    visit_finds_problem = fields.Float(load_default=2770 / 48000, validate=SHARE)
    visit_report_share = fields.Float(load_default=0.15, validate=SHARE)
    categories = fields.Dict(keys=fields.String(validate=validate.OneOf(CATEGORIES)), values=fields.Float(validate=POSITIVE),
                             load_default=lambda: dict(DEFAULT_CATEGORIES))
    channels = fields.Dict(keys=fields.String(validate=validate.OneOf(CHANNELS)), values=fields.Float(validate=POSITIVE),
                           load_default=lambda: dict(DEFAULT_CHANNELS))
    levels = fields.Dict(keys=fields.String(validate=validate.OneOf(LEVELS)), values=fields.Nested(LevelSchema),
                         load_default=lambda: {k: dict(v) for k, v in DEFAULT_LEVELS.items()})
    slow_share = fields.Float(load_default=0.10, validate=SHARE)
    slow_factor = fields.Float(load_default=4.0, validate=validate.Range(min=1.0, max=100.0))
    absent_share = fields.Float(load_default=0.03, validate=SHARE)
    department_accept_median_h = fields.Float(load_default=6.0, validate=POSITIVE)
    department_resolve_median_d = fields.Float(load_default=4.0, validate=POSITIVE)
    department_sign_off_share = fields.Float(load_default=0.7, validate=SHARE)
    rating_share = fields.Float(load_default=0.6, validate=SHARE)
    unsatisfied_share = fields.Float(load_default=0.12, validate=SHARE)
    red_confirm_share = fields.Float(load_default=0.03, validate=SHARE)
    refill_after_days = fields.Float(load_default=14.0, validate=validate.Range(min=0.0, max=120.0))

    @validates_schema
    def _every_level(self, data, **kwargs):
        missing = [lv for lv in LEVELS if lv not in data["levels"]]
        if missing:
            raise ValidationError(f"缺少层级：{', '.join(missing)}", "levels")


DEFAULT_CATEGORIES = {"environment": 0.24, "road": 0.14, "water": 0.11, "power": 0.07, "dispute": 0.12,
                      "hazard": 0.08, "housing": 0.08, "policy": 0.06, "social": 0.06, "other": 0.04}
DEFAULT_CHANNELS = {"mini_program": 0.62, "wechat": 0.18, "phone": 0.14, "walk_in": 0.06}
DEFAULT_LEVELS = {
    "neighbourhood": {"accept_median_h": 0.5, "resolve_median_h": 3.0, "resolve": 0.55, "escalate": 0.35, "sigma": 0.8},
    "group": {"accept_median_h": 0.8, "resolve_median_h": 3.0, "resolve": 0.55, "escalate": 0.35, "sigma": 0.8},
    "area": {"accept_median_h": 1.5, "resolve_median_h": 6.0, "resolve": 0.55, "escalate": 0.38, "sigma": 0.8},
    "village": {"accept_median_h": 2.0, "resolve_median_h": 10.0, "resolve": 0.60, "escalate": 0.35, "sigma": 0.8},
    "township": {"accept_median_h": 3.0, "resolve_median_h": 16.0, "resolve": 0.55, "escalate": 0.40, "sigma": 0.8},
}

PRESETS = {
    # The Shaoshan article's city (docs/simulation.md).
    "shaoshan": {},
    # CI: one township of about a sixth of the city's, reports made ten times as frequent so a month has work.
    "township": {"townships": 1, "villages": 4, "areas": 10, "groups": 30, "neighbourhoods": 70, "households": 900},
}


def load_city(doc: dict) -> dict:
    return _load(CitySchema(), doc, "city")


def load_behaviour(doc: dict) -> dict:
    return _load(BehaviourSchema(), doc, "behaviour")


def _load(schema: Schema, doc, what: str) -> dict:
    if not isinstance(doc, dict):
        raise SpecError(what, {"_schema": ["必须是一个 JSON 对象"]})
    try:
        return schema.load(doc)
    except ValidationError as exc:
        raise SpecError(what, exc.messages) from None


def read_json(path: str | Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(what, {"file": [f"找不到文件 {path}"]}) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(what, {"file": [f"不是合法的 JSON：{exc}"]}) from None
