"""intake's edge schemas: what a resident-facing client may send, and what it gets back."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema
from marshmallow.utils import missing

from shared.domain.categories import CATEGORIES
from shared.domain.phones import PHONE_PATTERN
from shared.domain.phones import is_valid as is_valid_phone
from shared.domain.phones import mask as mask_phone
from shared.domain.phones import normalise as normalise_phone
from shared.events import NOT_BLANK, TOWNSHIP_CODE

CHANNELS = ("mini_program", "wechat", "phone", "walk_in", "lead", "open311", "web")


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
    reporter_phone = fields.String(required=True, metadata={"example": "13800000000", "pattern": PHONE_PATTERN})
    reporter_name = fields.String(validate=validate.Length(min=1, max=40))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS), metadata={"example": "mini_program"})
    photos = fields.List(fields.Url(schemes={"http", "https"}, validate=validate.Length(max=500),
                                    metadata={"format": "uri", "pattern": "^https?://"}),
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

    def load(self, data, *args, **kwargs):
        plain = None if args or kwargs else self._plain_load(data)
        data = plain if plain is not None else super().load(data, *args, **kwargs)
        data["reporter_phone"] = normalise_phone(data["reporter_phone"])
        return data

    def _plain_load(self, data) -> dict | None:
        """What ``Schema.load`` returns for a report that passes, or None: then marshmallow loads it
        and names what is wrong. The same fields, their own ``deserialize`` (type, conversion,
        validators) and this schema's own two rules, without marshmallow's per-load bookkeeping
        (hooks looked up, error store, unknown-field pass: most of ReportIn.load's 7 % of intake's
        accept path, issue 16). tests/unit/test_report_in_load.py holds the two roads equal."""
        if self.many or self.partial or self.unknown != RAISE or type(data) is not dict \
                or not data.keys() <= self.load_fields.keys():  # unknown keys: RAISE, marshmallow names them
            return None
        out = {}
        try:
            for name, field in self.load_fields.items():
                value = data.get(name, missing)
                if value is missing:
                    if field.required:
                        return None
                    if field.load_default is not missing:
                        out[name] = field.load_default() if callable(field.load_default) else field.load_default
                    continue
                out[name] = field.deserialize(value, name, data)
            self._phone(out["reporter_phone"])
            self._locatable(out)
        except ValidationError:
            return None
        return out


class Open311ReportIn(ReportIn):
    """An Open311 client's report (services/intake/open311_api.py): the phone is optional when the
    problem is located by lat/long or an address, as GeoReport v2 has it; the email is kept, never shown."""

    reporter_phone = fields.String(load_default=None, allow_none=True,
                                   metadata={"example": "13800000000", "pattern": PHONE_PATTERN})
    reporter_email = fields.Email(validate=validate.Length(max=254), error_messages={"invalid": "邮箱格式不正确"})

    @validates("reporter_phone")
    def _phone(self, value, **_):
        if value is not None and not is_valid_phone(value):
            raise ValidationError("手机号或座机号格式不正确")

    @validates_schema
    def _locatable(self, data, **_):
        if not (data.get("household_id") or data.get("address") or data.get("reporter_phone")
                or data.get("location")):
            raise ValidationError("需要经纬度、地址、住户或电话之一", field_name="address")

    def load(self, *args, **kwargs):
        data = Schema.load(self, *args, **kwargs)
        if data.get("reporter_phone"):
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
    tier = fields.String(allow_none=True, metadata={"description": "instant：常见问题已即时答复"})
    answer = fields.Nested(lambda: InstantAnswerOut(), allow_none=True)
    linked_to = fields.Nested(lambda: LinkedOut(), allow_none=True, metadata={"description": "本诉求关注（并入）的诉求"})
    followers = fields.Function(lambda r: len(r.get("followers") or []),
                                metadata={"description": "关注本诉求的其他群众诉求数"})
    possible_duplicates = fields.List(fields.Nested(lambda: DuplicateOut()))
    resolution = fields.Nested(lambda: ResolutionOut(), allow_none=True)
    rating = fields.Method("_rating", allow_none=True)
    can_rate = fields.Method("_can_rate")
    photos = fields.Method("_photos")
    awaiting = fields.Dict(allow_none=True, metadata={"description": "经办人请您补充的材料（note）；补充后恢复办理"})

    def _rating(self, r):
        from .loop import current_rating

        current = current_rating(r)
        return RatingOut().dump(current) if current else None

    def _can_rate(self, r):
        from .loop import can_rate

        return can_rate(r)

    def _photos(self, r):
        return [*(r.get("photos") or []), *(u["url"] for u in r.get("uploads") or [])]


class ReportCreated(Schema):
    id = fields.String(attribute="_id")
    tracking_no = fields.String()
    status = fields.String()
    status_text = fields.String()
    tier = fields.String(allow_none=True)
    answer = fields.Nested(lambda: InstantAnswerOut(), allow_none=True,
                           metadata={"description": "常见问题即时答复；没有解决问题可调用 not-answered 转人工"})
    possible_duplicates = fields.List(fields.Nested(lambda: DuplicateOut()),
                                      metadata={"description": "附近（同地址、200米内）同类未办结的诉求，可选择关注"})
    resident_token = fields.String(allow_none=True,
                                   metadata={"description": "群众凭证：仅用于本诉求的评价、补充照片、转人工和关注"})


def created_body(report: dict, status_text: str, resident_token: str | None) -> dict:
    """What ``ReportCreated().dump`` makes of an accepted report, built directly: the schema documents
    the 201 answer, this writes it for every report (marshmallow's dump was 7% of intake's time,
    issue 16). Only the schema's fields, each only when present, as dump does; a unit test holds the
    two equal."""
    out = {"id": report["_id"], **_present(report, ("tracking_no", "status", "tier")), "status_text": status_text,
           "resident_token": resident_token}
    if "answer" in report:
        answer = report["answer"]
        out["answer"] = None if answer is None else _present(answer, _ANSWER_FIELDS)
        if out["answer"] and out["answer"].get("confidence") is not None:
            out["answer"]["confidence"] = float(out["answer"]["confidence"])
    if "possible_duplicates" in report:
        out["possible_duplicates"] = [_present(d, _DUPLICATE_FIELDS) for d in report["possible_duplicates"]]
    return out


def _present(doc: dict, keys: tuple[str, ...]) -> dict:
    return {k: doc[k] for k in keys if k in doc}


# -- the resident's loop ---------------------------------------------------------------------------
PHONE_LAST4 = fields.String(validate=validate.Regexp(r"^\d{4}$", error="须为报事手机号的后四位数字"),
                            metadata={"example": "0001", "description": "报事手机号后四位（用群众凭证时不需要）"})


class InstantAnswerOut(Schema):
    entry_code = fields.String()
    question = fields.String()
    answer = fields.String()
    category = fields.String(allow_none=True)
    confidence = fields.Float()
    declined_at = fields.String(allow_none=True)


class DuplicateOut(Schema):
    tracking_no = fields.String()
    description = fields.String(metadata={"description": "脱敏后的问题描述（前60字）"})
    status = fields.String()
    submitted_at = fields.String(allow_none=True)
    distance_m = fields.Integer(allow_none=True)


class LinkedOut(Schema):
    tracking_no = fields.String()
    at = fields.String()


class ResolutionOut(Schema):
    no = fields.Integer(metadata={"description": "第几次办结"})
    at = fields.String()
    level = fields.String(allow_none=True)
    unit_name = fields.String(allow_none=True)
    note = fields.String(allow_none=True)


class RatingOut(Schema):
    resolution = fields.Integer()
    rating = fields.String()
    label = fields.String()
    comment = fields.String(allow_none=True)
    source = fields.String()
    at = fields.String()


class PhotoItem(Schema):
    id = fields.String()
    url = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    at = fields.String()


class NotAnsweredIn(Schema):
    class Meta:
        unknown = RAISE

    phone_last4 = PHONE_LAST4
    note = fields.String(validate=validate.Length(max=500), metadata={"description": "还想问什么（可选）"})


class RatingIn(Schema):
    class Meta:
        unknown = RAISE

    phone_last4 = PHONE_LAST4
    rating = fields.String(required=True, validate=validate.OneOf(
        ["满意", "基本满意", "不满意", "satisfied", "basically_satisfied", "unsatisfied"]),
        metadata={"example": "满意"})
    comment = fields.String(validate=validate.Length(max=500), metadata={"example": "修得很及时"})


class SupplementIn(Schema):
    class Meta:
        unknown = RAISE

    phone_last4 = PHONE_LAST4
    text = fields.String(required=True, validate=[validate.Length(min=1, max=1000), NOT_BLANK],
                         metadata={"example": "漏水在厨房水槽下方，门牌号是韶山村一组12号"})


class FollowIn(Schema):
    class Meta:
        unknown = RAISE

    phone_last4 = PHONE_LAST4
    target = fields.String(required=True, validate=validate.Regexp(r"^[0-9A-Za-z]{4,32}$", error="查询码格式不正确"),
                           metadata={"description": "要关注的诉求的查询码"})


class PhotoForm(Schema):
    class Meta:
        unknown = RAISE

    phone_last4 = PHONE_LAST4


class ResidentContactOut(Schema):
    """回电: the resident's number, for the lead whose post holds the case (docs/pages.md)."""
    report_id = fields.String()
    tracking_no = fields.String()
    name = fields.String(allow_none=True, metadata={"description": "群众留下的称呼"})
    phone = fields.String(allow_none=True, metadata={"description": "群众的手机号；没有留电话时为空"})


class PhotoOut(Schema):
    report_id = fields.String()
    tracking_no = fields.String()
    photo = fields.Nested(PhotoItem)
    photos = fields.List(fields.Nested(PhotoItem))


_ANSWER_FIELDS = tuple(InstantAnswerOut().fields)
_DUPLICATE_FIELDS = tuple(DuplicateOut().fields)
