"""Request and response shapes of the case endpoints. Requests reject unknown fields."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.domain.categories import CATEGORIES
from shared.domain.levels import UNIT_NAMES
from shared.events import LEVELS, NOT_BLANK

from .case_photos import sent_field
from .pausing import PAUSE_REASONS
from .transitions import ESCALATION_REASONS, STATUS_TEXT
from .views import SHOWS

NOTE = [validate.Length(min=1, max=1000), NOT_BLANK]
# instant is the bot's tier; a case a person handles is on one of these.
CASE_TIERS = ("general", "difficult", "complex")


class _In(Schema):
    class Meta:
        unknown = RAISE


class OptionalNoteIn(_In):
    note = fields.String(validate=NOTE, metadata={"example": "已联系住户，今天下午上门查看"})


class NoteIn(_In):
    note = fields.String(required=True, validate=NOTE, metadata={"example": "已更换路灯灯泡，住户确认恢复照明"})


class ResolveIn(NoteIn):
    photos = sent_field(metadata={
        "description": "The photos sent with this 办结: the addresses (\"/api/v1/photos/<id>\") intake answered "
                       "their uploads with, at most 9, the case's own. The 办结 keeps them and its timeline says "
                       "附照片N张 by this list. Without it, the photos the holder added since the previous 办结 "
                       "are counted (older clients).",
        "example": ["/api/v1/photos/0f1e2d3c4b5a69788796a5b4c3d2e1f0"]})
    dry_run = fields.Boolean(load_default=False, metadata={
        "description": "true: every check of 办结, nothing stored — answers as 办结 would (200 with the case as "
                       "it would be, or the same 4xx). Ask it before uploading 办结's photos, so a refused 办结 "
                       "leaves no photo behind."})


class EscalateIn(_In):
    reason = fields.String(required=True, validate=validate.OneOf(list(ESCALATION_REASONS)),
                           metadata={"description": "beyond_ability 超出本级处理能力 / needs_department 需要部门协调"
                                                    " / not_my_neighbourhood 不属于本辖区",
                                     "example": "beyond_ability"})
    note = fields.String(validate=NOTE, metadata={"example": "需要更换整段排水管，本组无力处理"})


class PauseIn(_In):
    reason = fields.String(required=True, validate=validate.OneOf(list(PAUSE_REASONS)),
                           metadata={"description": "awaiting_resident 待群众补充材料 / awaiting_external 等待外部事项",
                                     "example": "awaiting_resident"})
    note = fields.String(required=True, validate=NOTE,
                         metadata={"description": "缺什么、等什么（待群众补充时会发给群众）",
                                   "example": "请补充漏水位置的照片和具体门牌号"})
    until = fields.AwareDateTime(metadata={"description": "仅等待外部事项时可填：约定的恢复时间（ISO-8601，带时区，"
                                                          "如 2026-11-05T09:00:00+08:00），须在挂起上限之内"})

    @validates_schema
    def _until_for_external(self, data, **kwargs):
        if data.get("until") and data.get("reason") != "awaiting_external":
            raise ValidationError("只有等待外部事项（awaiting_external）时可填写恢复时间", field_name="until")


class ReassignIn(_In):
    unit_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    note = fields.String(validate=NOTE)


class RecategoriseIn(_In):
    category = fields.String(validate=validate.OneOf(list(CATEGORIES)), metadata={"example": "road"})
    tier = fields.String(validate=validate.OneOf(CASE_TIERS), metadata={"example": "difficult"})
    note = fields.String(validate=NOTE)

    @validates_schema
    def _something(self, data, **kwargs):
        if not data.get("category") and not data.get("tier"):
            raise ValidationError("请给出新的 category 或 tier", field_name="category")


class _Page(_In):
    show = fields.String(load_default="open", validate=validate.OneOf(SHOWS))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    skip = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100_000))


class HeldQuery(_Page):
    pass


class TownshipCasesQuery(_Page):
    level = fields.String(validate=validate.OneOf(LEVELS))
    unit_id = fields.String(validate=validate.Length(min=1, max=64))
    supervision = fields.String(validate=validate.OneOf(["unanswered"]))


class CaseOut(Schema):
    id = fields.String(attribute="_id")
    township = fields.String()
    tracking_no = fields.String()
    report_id = fields.String()
    category = fields.String()
    category_name = fields.Function(lambda c: CATEGORIES.get(c["category"], c["category"]))
    tier = fields.String()
    status = fields.String()
    status_text = fields.Function(lambda c: STATUS_TEXT.get(c["status"], c["status"]))
    level = fields.String()
    level_name = fields.Function(lambda c: UNIT_NAMES.get(c["level"], c["level"]))
    unit_id = fields.String(allow_none=True)
    assignee = fields.Dict()
    urgent = fields.Boolean()
    summary = fields.String(allow_none=True)
    created_at = fields.String()
    assigned_at = fields.String(allow_none=True)
    accepted_at = fields.String(allow_none=True)
    accept_due = fields.String(allow_none=True)
    resolve_due = fields.String(allow_none=True)
    promise_due = fields.String(allow_none=True)
    deadline = fields.String(allow_none=True, metadata={"description": "当前应完成（接单或办结）的时限"})
    timing = fields.String(allow_none=True, metadata={"description": "on_time / due_soon / overdue / paused"})
    promise_overdue = fields.Boolean()
    timer = fields.Dict(allow_none=True)
    escalations = fields.Integer()
    unanswered_supervisions = fields.Integer()
    resolved_at = fields.String(allow_none=True)
    resolution = fields.String(allow_none=True)
    pause = fields.Dict(allow_none=True, metadata={"description": "挂起中：原因、说明、开始时间、自动恢复时间；否则为空"})
    paused_seconds = fields.Float(metadata={"description": "已结束的挂起累计时长（秒）"})


class CaseDetailOut(CaseOut):
    timeline = fields.List(fields.Dict())
    supervisions = fields.List(fields.Dict())
    breaches = fields.List(fields.Dict())
    figures = fields.Dict()
    pauses = fields.List(fields.Dict(), metadata={"description": "已结束的挂起"})
