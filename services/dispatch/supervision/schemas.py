"""What supervision's HTTP edge accepts: query strings and bodies (unknown fields refused)."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.domain.phones import is_valid as is_valid_phone

from .cards import CHOICES
from .export import PERIODS
from .figures import BY, local_day
from .visits import MODES

STAFF = ("staff", "operator")   # the roles that run a township's supervision
DAY_OR_TIME = validate.Regexp(r"^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?$",
                              error="日期格式应为 YYYY-MM-DD 或 ISO-8601 时间")
QUARTER = validate.Regexp(r"^\d{4}Q[1-4]$", error="季度格式应为 2026Q4")


class _In(Schema):
    class Meta:
        unknown = RAISE


class FiguresQuery(_In):
    from_ = fields.String(data_key="from", validate=DAY_OR_TIME, metadata={"example": "2026-10-01"})
    to = fields.String(validate=DAY_OR_TIME, metadata={"example": "2026-12-31", "description": "含当日"})
    by = fields.String(validate=validate.OneOf([b for b in BY if b not in ("township",)]),
                       metadata={"description": "village / level / lead / department / category / week"})
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "xlsx"]))
    period = fields.String(validate=validate.OneOf(PERIODS), metadata={"description": "XLSX 分表周期，默认 month"})

    @validates_schema
    def _order(self, data, **_):
        if data.get("from_") and data.get("to") and local_day(data["from_"]) >= local_day(data["to"], end=True):
            raise ValidationError("结束日期须晚于开始日期", field_name="to")


class CityQuery(_In):
    from_ = fields.String(data_key="from", validate=DAY_OR_TIME)
    to = fields.String(validate=DAY_OR_TIME)


class LedgerQuery(_In):
    lead = fields.String(validate=validate.Length(min=1, max=64))
    from_ = fields.String(data_key="from", validate=DAY_OR_TIME)
    to = fields.String(validate=DAY_OR_TIME)
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))


class QuarterQuery(_In):
    quarter = fields.String(validate=QUARTER, metadata={"example": "2026Q4"})


class ReviewIn(_In):
    quarter = fields.String(required=True, validate=QUARTER, metadata={"example": "2026Q4"})


class DecisionIn(_In):
    card = fields.String(required=True, validate=validate.OneOf(CHOICES),
                         metadata={"description": "red 红牌 / yellow 黄牌 / blue 蓝牌 / none 不亮牌"})
    note = fields.String(validate=validate.Length(min=1, max=500))


class PostLeadIn(_In):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=20), validate.Regexp(r"\S")])
    phone = fields.String(required=True, metadata={"example": "13800000000"})
    wecom_id = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_\-@.]{0,63}$"))

    @validates_schema
    def _phone(self, data, **_):
        if "phone" in data and not is_valid_phone(data["phone"]):
            raise ValidationError("手机号或座机号格式不正确", field_name="phone")


class VisitIn(_In):
    household_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    mode = fields.String(required=True, validate=validate.OneOf(list(MODES)),
                         metadata={"description": "in_person 上门 / phone 电话 / wechat 微信"})
    findings = fields.String(validate=validate.Length(min=1, max=1000), metadata={"example": "老人身体好，家中漏水已报修"})
    at = fields.AwareDateTime(metadata={"description": "走访时间，默认现在"})
    report_id = fields.String(validate=validate.Length(min=8, max=64),
                              metadata={"description": "走访中代群众提交的诉求（POST /api/v1/reports, channel=lead）的 id"})


class VisitsQuery(_In):
    household_id = fields.String(validate=validate.Length(min=1, max=64))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
