"""The lead's workbench forms (services/dispatch/web/lead.py): what each field accepts, with the
Chinese message shown next to it. The session's CSRF field is checked by shared.auth, not here."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from shared.domain.categories import CATEGORIES

from .case_photos import sent_field
from .transitions import ESCALATION_REASONS

NOTE = validate.Length(min=2, max=500, error="请写2到500个字")
# A visit logged on the page happened today (now), yesterday or the day before (this time of day):
# far enough back for a visit recorded when the lead is home again, not a back-dated history.
VISIT_DAYS = {"today": ("今天", 0), "yesterday": ("昨天", 1), "day_before": ("前天", 2)}


def _blank_to_none(data):
    return {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()
            if not (isinstance(v, str) and not v.strip())}


class _Form(Schema):
    class Meta:
        unknown = EXCLUDE   # the CSRF field, the submit button

    @pre_load
    def _blanks(self, data, **_):
        return _blank_to_none(data)


class AcceptForm(_Form):
    note = fields.String(validate=validate.Length(max=500, error="不超过500个字"))


class NoteForm(_Form):
    """进展、办结、答复督办: what was done."""
    note = fields.String(required=True, validate=NOTE, error_messages={"required": "请写明办理情况"})


class ResolveForm(NoteForm):
    """办结: what was done, and the photos the page's script uploaded for it (their addresses)."""
    photos = sent_field()


class EscalateForm(_Form):
    """上交: why it goes up a level."""
    reason = fields.String(required=True, validate=validate.OneOf(list(ESCALATION_REASONS), error="请选择上交原因"),
                           error_messages={"required": "请选择上交原因"})
    note = fields.String(validate=validate.Length(max=500, error="不超过500个字"))


class AnswerForm(NoteForm):
    supervision_id = fields.String(required=True, validate=validate.Length(min=1, max=40),
                                   error_messages={"required": "缺少督办编号，请刷新页面"})


class LocalDateTime(fields.DateTime):
    """A datetime-local field ("2026-11-05T09:00"): local time (shared.domain.localtime) made aware."""

    def _deserialize(self, value, attr, data, **kwargs):
        from datetime import datetime

        from shared.domain.localtime import local_zone
        try:
            return datetime.fromisoformat(str(value)).replace(tzinfo=local_zone())
        except ValueError:
            raise self.make_error("invalid") from None


class PauseForm(_Form):
    """挂起: what the case waits for, a note, and (only while waiting for something outside) until when."""
    reason = fields.String(required=True, validate=validate.OneOf(["awaiting_resident", "awaiting_external"],
                                                                   error="请选择挂起原因"),
                           error_messages={"required": "请选择挂起原因"})
    note = fields.String(required=True, validate=NOTE, error_messages={"required": "请写明缺什么、等什么"})
    until = LocalDateTime(error_messages={"invalid": "请填写正确的日期和时间"})

    @validates_schema
    def _until_for_external(self, data, **_):
        if data.get("until") and data.get("reason") != "awaiting_external":
            raise ValidationError("只有等待外部事项时可填写恢复时间", field_name="until")


class ResumeForm(_Form):
    note = fields.String(validate=validate.Length(max=500, error="不超过500个字"))


class VisitForm(_Form):
    """我的积分与走访: one tap logs a visit to a household (mode: 上门/电话/微信)."""
    household_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                                 error_messages={"required": "缺少住户编号，请刷新页面"})
    mode = fields.String(required=True, validate=validate.OneOf(["in_person", "phone", "wechat"],
                                                                error="请选择走访方式"),
                         error_messages={"required": "请选择走访方式"})
    # 记录走访情况: what was found (as POST /api/v1/visits takes it) and a past day within the window.
    findings = fields.String(validate=validate.Length(min=2, max=1000, error="请写2到1000个字"))
    day = fields.String(load_default="today", validate=validate.OneOf(list(VISIT_DAYS), error="请选择走访时间"))


TIERS = {"general": "一般问题", "difficult": "疑难问题", "complex": "复杂问题"}


class SuperviseForm(_Form):
    """督办: what the township asks of the holder."""
    note = fields.String(required=True, validate=NOTE, error_messages={"required": "请写明督办要求"})


class ReassignForm(_Form):
    unit_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                            error_messages={"required": "请选择改派给哪个岗位"})
    note = fields.String(validate=validate.Length(max=500, error="不超过500个字"))


class RecategoriseForm(_Form):
    category = fields.String(validate=validate.OneOf(list(CATEGORIES), error="请选择类别"))
    tier = fields.String(validate=validate.OneOf(list(TIERS), error="请选择难度"))
    note = fields.String(validate=validate.Length(max=500, error="不超过500个字"))

    @validates_schema
    def _something(self, data, **_):
        if not data.get("category") and not data.get("tier"):
            raise ValidationError("请选择新的类别或难度", field_name="category")
