"""intake's edge schemas: what a resident-facing client may send, and what it gets back."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

from shared.events import TOWNSHIP_CODE
from shared.privacy import is_valid_phone, mask_phone, normalise_phone

from services.dispatch.sla import CATEGORIES

CHANNELS = ("mini_program", "wechat", "phone", "walk_in", "lead", "open311")


class Location(Schema):
    class Meta:
        unknown = RAISE

    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    lng = fields.Float(required=True, validate=validate.Range(-180, 180))


class ReportIn(Schema):
    class Meta:
        unknown = RAISE

    township = fields.String(required=True, validate=TOWNSHIP_CODE, metadata={"example": "430382100"})
    household_id = fields.String(validate=validate.Length(max=64))
    address = fields.String(validate=validate.Length(min=2, max=120), metadata={"example": "韶山村一组12号"})
    category = fields.String(required=True, validate=validate.OneOf(list(CATEGORIES)),
                             metadata={"example": "environment"})
    description = fields.String(required=True, validate=validate.Length(min=4, max=2000),
                                metadata={"example": "路灯坏了一个星期，晚上出行不安全"})
    reporter_phone = fields.String(required=True, metadata={"example": "13800000000"})
    reporter_name = fields.String(validate=validate.Length(min=1, max=40))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS), metadata={"example": "mini_program"})
    photos = fields.List(fields.Url(schemes={"http", "https"}, validate=validate.Length(max=500)),
                         validate=validate.Length(max=9))
    location = fields.Nested(Location)
    urgent = fields.Boolean(metadata={"description": "安全隐患等紧急情况：静默时段也立即通知"})

    @validates("reporter_phone")
    def _phone(self, value, **_):
        if not is_valid_phone(value):
            raise ValidationError("手机号或座机号格式不正确")

    @validates_schema
    def _locatable(self, data, **_):
        if not (data.get("household_id") or data.get("address") or data.get("reporter_phone")):
            raise ValidationError("需要住户、地址或登记电话之一", field_name="address")

    def load(self, *args, **kwargs):
        data = super().load(*args, **kwargs)
        data["reporter_phone"] = normalise_phone(data["reporter_phone"])
        return data


class Handler(Schema):
    level = fields.String()
    unit_name = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={"description": "脱敏电话"})


class TimelineItem(Schema):
    at = fields.String()
    type = fields.String()
    text = fields.String()


class ReportView(Schema):
    id = fields.String(attribute="_id")
    tracking_no = fields.String()
    township = fields.String()
    category = fields.String()
    category_name = fields.Function(lambda r: CATEGORIES.get(r["category"], r["category"]))
    description = fields.String()
    status = fields.String()
    status_text = fields.String()
    level = fields.String(allow_none=True)
    handler = fields.Nested(Handler, allow_none=True)
    expected_at = fields.String(allow_none=True, metadata={"description": "承诺办结时间"})
    submitted_at = fields.String()
    updated_at = fields.String()
    reporter_phone = fields.Function(lambda r: mask_phone(r.get("reporter_phone")))
    timeline = fields.List(fields.Nested(TimelineItem))


class ReportCreated(Schema):
    id = fields.String(attribute="_id")
    tracking_no = fields.String()
    status = fields.String()
    status_text = fields.String()
