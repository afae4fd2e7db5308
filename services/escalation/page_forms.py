"""The department desk's forms (services/escalation/web/desk.py), with the Chinese message shown
next to each field. The session's CSRF field is checked by shared.auth, not here."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, pre_load, validate

TEXT = validate.Length(min=2, max=2000, error="请写2到2000个字")
URL = validate.URL(schemes={"http", "https"}, require_tld=False, error="请填写以 http:// 或 https:// 开头的链接")


class _Form(Schema):
    class Meta:
        unknown = EXCLUDE   # the CSRF field, the submit button

    @pre_load
    def _blanks(self, data, **_):
        return {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()
                if not (isinstance(v, str) and not v.strip())}


class AcceptForm(_Form):
    note = fields.String(validate=validate.Length(max=2000, error="不超过2000个字"))


class NoteForm(_Form):
    note = fields.String(required=True, validate=TEXT, error_messages={"required": "请写明办理情况"})


class ExtensionForm(_Form):
    working_days = fields.Integer(required=True, validate=validate.Range(min=1, max=60, error="延长1到60个工作日"),
                                  error_messages={"required": "请填写延长几个工作日", "invalid": "请填写1到60的数字"})
    reason = fields.String(required=True, validate=TEXT, error_messages={"required": "请写明延期理由"})


class ReturnForm(_Form):
    reason = fields.String(required=True, validate=TEXT, error_messages={"required": "请写明不属本部门职责的理由"})
    # A link, or files chosen beside it (the desk checks that one of them is there).
    evidence = fields.String(validate=[URL, validate.Length(max=500, error="链接太长")])


class SignOffForm(_Form):
    resolution = fields.String(required=True, validate=TEXT, error_messages={"required": "请写明办理结果"})
