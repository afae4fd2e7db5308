"""The resident's forms on the pages (services/intake/web/): what each field accepts, with the
Chinese message shown next to it. Form values arrive as text; a blank optional field is no value."""
from __future__ import annotations

from marshmallow import (EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates,
                         validates_schema)

from shared.domain.categories import CATEGORIES
from shared.domain.phones import is_valid as is_valid_phone, mobile

from .ratings import RATING_LABELS

NONCE = validate.Regexp(r"^[0-9a-f]{32}$", error="页面已过期，请刷新后重新提交")


def _blank_to_none(data):
    return {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()
            if not (isinstance(v, str) and not v.strip())}


class ReportForm(Schema):
    """群众点单: the report page's fields (photos are checked apart: photos.py's rules)."""
    class Meta:
        unknown = EXCLUDE   # the submit button and the like

    category = fields.String(required=True, validate=validate.OneOf(list(CATEGORIES), error="请选择问题类别"),
                             error_messages={"required": "请选择问题类别"})
    description = fields.String(required=True, validate=validate.Length(
        min=4, max=2000, error="请用几句话说明问题（4到2000个字）"), error_messages={"required": "请说明是什么问题"})
    address = fields.String(required=True, validate=validate.Length(min=2, max=120, error="地址为2到120个字"),
                            error_messages={"required": "请填写地址，例如：韶山村一组12号"})
    phone = fields.String(required=True, error_messages={"required": "请填写手机号，用于查询进度和回访"})
    name = fields.String(validate=validate.Length(max=40, error="称呼不超过40个字"))
    lat = fields.Float(validate=validate.Range(-90, 90, error="位置不正确"), error_messages={"invalid": "位置不正确"})
    lng = fields.Float(validate=validate.Range(-180, 180, error="位置不正确"), error_messages={"invalid": "位置不正确"})
    urgent = fields.Boolean(load_default=False)
    submission = fields.String(required=True, validate=NONCE, error_messages={"required": "页面已过期，请刷新后重新提交"})

    @pre_load
    def _blanks(self, data, **_):
        return _blank_to_none(data)

    @validates("phone")
    def _phone(self, value, **_):
        if not is_valid_phone(value):
            raise ValidationError("手机号格式不正确，请填写11位手机号")

    @validates_schema
    def _both(self, data, **_):
        if ("lat" in data) != ("lng" in data):
            raise ValidationError("位置不完整，请重新获取或不填", field_name="lat")


class TrackForm(Schema):
    """查询进度: the tracking number and the last four digits of the reporting phone."""
    class Meta:
        unknown = EXCLUDE

    tracking_no = fields.String(required=True, validate=validate.Regexp(
        r"^[0-9A-Za-z]{4,12}$", error="查询码为4到12位字母或数字"), error_messages={"required": "请填写查询码"})
    phone_last4 = fields.String(required=True, validate=validate.Regexp(
        r"^\d{4}$", error="请填写报事手机号的后四位数字"), error_messages={"required": "请填写手机号后四位"})

    @pre_load
    def _blanks(self, data, **_):
        return _blank_to_none(data)


class RatingForm(Schema):
    """群众评单: 满意 / 基本满意 / 不满意, with an optional comment."""
    class Meta:
        unknown = EXCLUDE

    rating = fields.String(required=True, validate=validate.OneOf(list(RATING_LABELS.values()), error="请选择评价"),
                           error_messages={"required": "请选择评价"})
    comment = fields.String(validate=validate.Length(max=500, error="意见不超过500个字"))
    csrf = fields.String(required=True, error_messages={"required": "页面已过期，请刷新后重新提交"})

    @pre_load
    def _blanks(self, data, **_):
        return _blank_to_none(data)


class NotAnsweredForm(Schema):
    """没有解决我的问题: an optional note, sent on to a person."""
    class Meta:
        unknown = EXCLUDE

    note = fields.String(validate=validate.Length(max=500, error="补充说明不超过500个字"))
    csrf = fields.String(required=True, error_messages={"required": "页面已过期，请刷新后重新提交"})

    @pre_load
    def _blanks(self, data, **_):
        return _blank_to_none(data)


class ResidentReportForm(ReportForm):
    """群众点单 signed in: the phone is the verified one (never typed), and "为我家反映" needs no
    address — dispatch finds the household registered to that phone."""
    phone = fields.String(load_default=None)
    where = fields.String(load_default="home", validate=validate.OneOf(("home", "elsewhere"), error="请选择在哪里"))
    address = fields.String(validate=validate.Length(min=2, max=120, error="地址为2到120个字"))

    @validates_schema
    def _address_for_elsewhere(self, data, **_):
        if data.get("where") == "elsewhere" and not data.get("address"):
            raise ValidationError("请填写地址，例如：韶山村一组12号", field_name="address")


class SigninPhoneForm(Schema):
    """群众登录, step 1: the phone the code is texted to (a mobile number: landlines get no texts)."""
    class Meta:
        unknown = EXCLUDE

    phone = fields.String(required=True, validate=validate.Length(max=20, error="请填写11位手机号"),
                          error_messages={"required": "请填写手机号"})

    @pre_load
    def _blanks(self, data, **_):
        return _blank_to_none(data)

    @validates("phone")
    def _mobile(self, value, **_):
        if mobile(value) is None:
            raise ValidationError("请填写11位手机号（1开头的11位数字），座机不能接收验证码")


class SigninCodeForm(Schema):
    """群众登录, step 2: the code from the text message."""
    class Meta:
        unknown = EXCLUDE

    sms_code = fields.String(required=True, validate=validate.Regexp(r"^\d{6}$", error="验证码是短信里的6位数字"),
                             error_messages={"required": "请填写短信里的6位验证码"})

    @pre_load
    def _blanks(self, data, **_):
        return _blank_to_none(data)
