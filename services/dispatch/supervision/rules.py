"""Each township's 正负面清单: what earns a lead points, what costs them, and the card thresholds.

The seeds (Qingyang): "采取征求意见、充分讨论、会议研究的形式制定正负面清单，为每项清单赋予一定正负分值".
Here it is a rule set per township, the defaults below until its staff or the operator PUT
another. The codes are fixed (each is a fact the system detects); the names, the values and the
thresholds are the township's. A ledger entry keeps the points its rule was worth when it was
written, so changing a value changes future entries, never history.
"""
from __future__ import annotations

import copy

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.storage import Store

# code → (default name, default points): what the system can detect.
POSITIVE = {
    "accept_on_time": ("按时接单", 1),
    "resolve_on_time": ("按时办结", 3),
    "rated_satisfied": ("群众评价满意", 2),
    "visit_logged": ("按时走访联系户", 1),
}
NEGATIVE = {
    "breach_accept": ("超时未接单", -2),
    "breach_resolve": ("超时未办结", -3),
    "rated_unsatisfied": ("群众评价不满意", -3),
    "supervision_unanswered": ("督办未按时答复", -2),
    "visit_overdue": ("联系户走访超期", -1),
}
CARDS = ("red", "yellow", "blue")  # most severe first
CARD_NAMES = {"red": "红牌", "yellow": "黄牌", "blue": "蓝牌", "none": "无"}
CARD_MEANINGS = {"red": "终止任职", "yellow": "督促整改", "blue": "加强培训", "none": ""}

DEFAULT_RULES = {
    "positive": [{"code": c, "name": n, "points": p} for c, (n, p) in POSITIVE.items()],
    "negative": [{"code": c, "name": n, "points": p} for c, (n, p) in NEGATIVE.items()],
    "supervision_answer_hours": 24,
    "satisfied_min_score": 4,
    # A lead gets the most severe card any of whose conditions holds for the quarter.
    "cards": {
        "red": {"points_below": -15, "satisfaction_below": 0.5, "breaches_at_least": 10,
                "overdue_visits_at_least": 8, "min_rated": 3},
        "yellow": {"points_below": -5, "satisfaction_below": 0.7, "breaches_at_least": 5,
                   "overdue_visits_at_least": 4, "min_rated": 3},
        "blue": {"points_below": 0, "satisfaction_below": 0.85, "breaches_at_least": 2,
                 "overdue_visits_at_least": 2, "min_rated": 3},
    },
}


class _In(Schema):
    class Meta:
        unknown = RAISE


class RuleIn(_In):
    code = fields.String(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=40))
    points = fields.Float(required=True, validate=validate.Range(min=-100, max=100))


class CardRuleIn(_In):
    points_below = fields.Float(allow_none=True, load_default=None,
                                metadata={"description": "季度积分低于此值"})
    satisfaction_below = fields.Float(allow_none=True, load_default=None, validate=validate.Range(min=0, max=1),
                                      metadata={"description": "满意率低于此值（评价数不少于 min_rated 时）"})
    min_rated = fields.Integer(load_default=3, validate=validate.Range(min=1, max=1000))
    breaches_at_least = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1))
    overdue_visits_at_least = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1))


class CardsIn(_In):
    red = fields.Nested(CardRuleIn, required=True)
    yellow = fields.Nested(CardRuleIn, required=True)
    blue = fields.Nested(CardRuleIn, required=True)


class RuleSetIn(_In):
    positive = fields.List(fields.Nested(RuleIn), required=True)
    negative = fields.List(fields.Nested(RuleIn), required=True)
    supervision_answer_hours = fields.Integer(required=True, validate=validate.Range(min=1, max=24 * 30))
    satisfied_min_score = fields.Integer(load_default=4, validate=validate.Range(min=1, max=5))
    cards = fields.Nested(CardsIn, required=True)

    @validates_schema
    def _lists(self, data, **_):
        for side, known, sign in (("positive", POSITIVE, 1), ("negative", NEGATIVE, -1)):
            seen = set()
            for i, rule in enumerate(data.get(side, [])):
                if rule["code"] not in known:
                    raise ValidationError({i: {"code": [f"未知条目，可选：{', '.join(known)}"]}}, field_name=side)
                if rule["code"] in seen:
                    raise ValidationError({i: {"code": ["条目重复"]}}, field_name=side)
                if rule["points"] * sign <= 0:
                    raise ValidationError({i: {"points": ["正面清单须为正分，负面清单须为负分"]}}, field_name=side)
                seen.add(rule["code"])


class RuleSetOut(Schema):
    township = fields.String()
    positive = fields.List(fields.Dict())
    negative = fields.List(fields.Dict())
    supervision_answer_hours = fields.Integer()
    satisfied_min_score = fields.Integer()
    cards = fields.Dict()
    is_default = fields.Boolean()
    changed_by = fields.String(allow_none=True)


class Rules:
    """Rule sets stored one document per township (dispatch's database)."""

    def __init__(self, store: Store):
        self.coll = store.collection("supervision_rules", [])

    def get(self, township: str) -> dict:
        doc = self.coll.get(township)
        rules = copy.deepcopy(doc["rules"] if doc else DEFAULT_RULES)
        return {**rules, "township": township, "is_default": doc is None,
                "changed_by": doc.get("changed_by") if doc else None}

    def put(self, township: str, rules: dict, actor: str) -> dict:
        self.coll.upsert({"_id": township, "township": township, "rules": rules, "changed_by": actor})
        return self.get(township)

    def points(self, township: str, code: str) -> tuple[str, float] | None:
        """(name, points) of a rule, or None when the township left it out (it earns nothing)."""
        rules = self.get(township)
        for rule in rules["positive"] + rules["negative"]:
            if rule["code"] == code:
                return rule["name"], rule["points"]
        return None
