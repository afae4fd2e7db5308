"""Request and response shapes of sign-in, sessions and accounts. Requests reject unknown fields."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.domain import phones
from shared.events import TOWNSHIP_CODE

from .accounts import KINDS

# Shown on pages: no control characters, no angle brackets, not blank (one pattern, so the OpenAPI
# document says exactly what is accepted).
PLAIN = validate.Regexp(r"^[^\x00-\x1f\x7f<>]*[^\x00-\x20\x7f<>\u3000][^\x00-\x1f\x7f<>]*$",
                        error="不能为空白，不能包含控制字符或尖括号")


MOBILE_PATTERN = r"^(\+86)?1[3-9][0-9]{9}$"   # documented; phones.mobile decides


def _mobile(value: str) -> None:
    if phones.mobile(value) is None:
        raise ValidationError("请填写11位手机号（1开头的11位数字），座机不能接收验证码")


class _In(Schema):
    class Meta:
        unknown = RAISE


class CodeIn(_In):
    phone = fields.String(required=True, validate=[validate.Length(max=20), _mobile],
                          metadata={"example": "13800000003", "pattern": MOBILE_PATTERN,
                                    "description": "登记在账号或花名册上的手机号"})


class ChallengeOut(Schema):
    challenge_id = fields.String(metadata={"description": "本次验证码的编号，登录时连同验证码一起提交"})
    expires_in = fields.Integer(metadata={"description": "验证码有效秒数"})
    resend_in = fields.Integer(metadata={"description": "多少秒后可重新获取"})
    message = fields.String()


class VerifyIn(_In):
    challenge_id = fields.String(required=True, validate=validate.Length(min=10, max=64),
                                 metadata={"example": "kV3xq0n9T1m4Z8r2bY6wP0aC"})
    sms_code = fields.String(required=True, validate=validate.Regexp(r"^\d{6}$", error="验证码是短信里的6位数字"),
                             metadata={"example": "123456"})


class SessionOut(Schema):
    token = fields.String(metadata={"description": "Authorization: Bearer <token>；有效期内可随时退出"})
    token_type = fields.Constant("Bearer")
    expires_at = fields.String()
    role = fields.String()
    name = fields.String(allow_none=True)
    townships = fields.List(fields.String())
    unit_id = fields.String(allow_none=True)
    department_id = fields.String(allow_none=True)


class MeOut(Schema):
    role = fields.String()
    name = fields.String(allow_none=True)
    townships = fields.List(fields.String())
    unit_id = fields.String(allow_none=True)
    department_id = fields.String(allow_none=True)
    scopes = fields.List(fields.String())
    session = fields.Boolean(metadata={"description": "是否为登录会话（而非机器凭证）"})
    csrf_token = fields.String(allow_none=True, metadata={"description": "以 Cookie 登录时，写操作须带 X-CSRF-Token"})


class SignedOutOut(Schema):
    ended = fields.Integer(metadata={"description": "结束的会话数"})


class AccountIn(_In):
    kind = fields.String(required=True, validate=validate.OneOf(KINDS), metadata={
        "description": "township_admin 镇(街道)管理员 / staff 镇(街道)工作人员 / city_admin 市级管理员 / department 部门经办人",
        "example": "staff"})
    name = fields.String(required=True, validate=[validate.Length(min=1, max=20), PLAIN],
                         metadata={"example": "李娟"})
    phone = fields.String(required=True, validate=[validate.Length(max=20), _mobile],
                          metadata={"example": "13800000009", "pattern": MOBILE_PATTERN})
    wecom_id = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_.@-]{1,64}$", error="企业微信账号只能含字母、数字和 _.@-"),
                             metadata={"example": "LiJuan"})
    title = fields.String(validate=[validate.Length(min=1, max=20), PLAIN],
                          metadata={"example": "综治中心专干", "description": "职务（选填），显示在账号列表中"})
    township = fields.String(validate=TOWNSHIP_CODE, metadata={"example": "430382100"})
    city = fields.String(validate=validate.Regexp(r"^\d{6}$", error="必须是6位市级行政区划代码"),
                         metadata={"example": "430382"})
    department_id = fields.String(validate=[validate.Length(min=3, max=64), PLAIN], metadata={"example": "430382-jtj"})

    @validates_schema
    def _needs(self, data, **kwargs):
        need = {"township_admin": "township", "staff": "township", "city_admin": "city",
                "department": "department_id"}[data["kind"]]
        if not data.get(need):
            label = {"township": "所属镇(街道)代码", "city": "所属市代码", "department_id": "所属部门编号"}[need]
            raise ValidationError({need: [f"{data['kind']} 账号须填写{label}"]})


class AccountPatch(_In):
    name = fields.String(validate=[validate.Length(min=1, max=20), PLAIN], metadata={"example": "李娟"})
    phone = fields.String(validate=[validate.Length(max=20), _mobile],
                          metadata={"example": "13800000010", "pattern": MOBILE_PATTERN,
                                    "description": "换号后原有登录全部失效"})
    wecom_id = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Za-z0-9_.@-]{1,64}$",
                             error="企业微信账号只能含字母、数字和 _.@-"), metadata={"example": "LiJuan"})
    title = fields.String(allow_none=True, validate=[validate.Length(min=1, max=20), PLAIN],
                          metadata={"example": "综治中心专干"})


class AccountQuery(_In):
    township = fields.String(validate=TOWNSHIP_CODE)
    city = fields.String(validate=validate.Regexp(r"^\d{6}$", error="必须是6位市级行政区划代码"))


class AccountOut(Schema):
    id = fields.String(attribute="_id")
    kind = fields.String()
    name = fields.String()
    phone = fields.Function(lambda a: phones.mask(a.get("phone")))
    wecom_id = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    township = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    department_id = fields.String(allow_none=True)
    created_at = fields.String()
