"""Request and response shapes of escalation's HTTP API. Requests reject unknown fields."""
from __future__ import annotations

import re

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from shared.clock import iso, parse_iso
from shared.domain.categories import CATEGORIES
from shared.domain.phones import PHONE_PATTERN
from shared.domain.phones import is_valid as is_valid_phone
from shared.domain.phones import normalise as normalise_phone
from shared.events import NOT_BLANK, TOWNSHIP_CODE
from shared.import_schemas import ImportQuery, PreviewOut

from .model import CASE_STATUS_TEXT, PART_STATUS_TEXT
from .policy import ClockPolicyIn

TEXT = [validate.Length(min=1, max=2000), NOT_BLANK]
SHORT = [validate.Length(min=1, max=200), NOT_BLANK]
CITY_CODE = validate.Regexp(r"^\d{6}$", error="必须是6位市(县)行政区划代码")
URL = validate.URL(schemes={"http", "https"}, require_tld=False, error="必须是 http(s) 链接")
URL_DOC = {"format": "uri", "pattern": "^https?://"}
# An attachment or evidence: a link, or the address of a file uploaded to the case (POST …/files).
OWN_FILE = re.compile(r"/dept/files/[A-Za-z0-9_-]{1,80}")
# Documented as a link (the generated examples of the API's fuzzing stay links); the description names the rest.
LINK_DOC = {**URL_DOC, "description": "http(s) 链接，或上传附件返回的地址 /dept/files/<id>"}


def LINK(value: str) -> None:
    if not OWN_FILE.fullmatch(value or ""):
        URL(value)
PART_STATUSES = tuple(PART_STATUS_TEXT)


class _In(Schema):
    class Meta:
        unknown = RAISE


class Phone(fields.String):
    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": PHONE_PATTERN, **(kwargs.get("metadata") or {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not is_valid_phone(text):
            raise ValidationError("电话号码格式不正确")
        return normalise_phone(text)


class Moment(fields.String):
    """An ISO-8601 time (UTC when no offset is given), kept as the stored fixed-width text."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return iso(parse_iso(text))
        except ValueError:
            raise ValidationError("时间格式应为 ISO-8601，例如 2026-11-05T09:00:00+08:00") from None


# -- administration -------------------------------------------------------------------------------

class DepartmentContactIn(_In):
    name = fields.String(required=True, validate=validate.Length(min=1, max=40), metadata={"example": "李科长"})
    phone = Phone(metadata={"example": "0731-55512345"})
    wecom_id = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_\-@.]{0,63}$"),
                             metadata={"example": "lisk"})


class CityIn(_In):
    name = fields.String(required=True, validate=validate.Length(min=1, max=40), metadata={"example": "韶山市"})
    supervisor = fields.Nested(DepartmentContactIn, allow_none=True,
                               metadata={"description": "市级督办联系人：部门超时的预警与超时通知送达此人"})
    sla = fields.Nested(ClockPolicyIn, allow_none=True,
                        metadata={"description": "本市各部门默认时限（部门可单独设置）"})


class CityOut(Schema):
    code = fields.String(attribute="_id", metadata={"example": "430382"})
    name = fields.String(metadata={"example": "韶山市"})
    supervisor = fields.Dict(allow_none=True)
    sla = fields.Dict(allow_none=True)
    updated_at = fields.String()


class DepartmentIn(_In):
    id = fields.String(validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,39}$",
                                                error="编号只能含小写字母、数字和-，2到40位"),
                       metadata={"example": "430382-zjj", "description": "可选；不填则自动生成"})
    name = fields.String(required=True, validate=validate.Length(min=2, max=60),
                         metadata={"example": "韶山市住房和城乡建设局"})
    contact = fields.Nested(DepartmentContactIn, allow_none=True, metadata={"description": "接收短信/企业微信通知的联系人"})
    sees_phone = fields.Boolean(load_default=False,
                                metadata={"example": False, "description": "是否可以看到群众完整电话（需上门或回访的部门）"})
    sla = fields.Nested(ClockPolicyIn, allow_none=True)


class DepartmentPatch(_In):
    name = fields.String(validate=validate.Length(min=2, max=60), metadata={"example": "韶山市住房和城乡建设局"})
    contact = fields.Nested(DepartmentContactIn, allow_none=True)
    sees_phone = fields.Boolean(metadata={"example": True})
    active = fields.Boolean(metadata={"example": True, "description": "false：停用，不再接新工单，凭证失效"})
    sla = fields.Nested(ClockPolicyIn, allow_none=True)


class DepartmentOut(Schema):
    id = fields.String(attribute="_id", metadata={"example": "430382-zjj"})
    city = fields.String(metadata={"example": "430382"})
    name = fields.String(metadata={"example": "韶山市住房和城乡建设局"})
    contact = fields.Dict(allow_none=True)
    sees_phone = fields.Boolean()
    active = fields.Boolean()
    sla = fields.Dict(allow_none=True)
    effective_sla = fields.Dict(metadata={"description": "实际生效的时限（部门、本市、默认逐项合并）"})
    webhook = fields.Function(lambda d: {k: v for k, v in (d.get("webhook") or {}).items() if k != "secret"} or None)


class WebhookIn(_In):
    url = fields.String(required=True, validate=[URL, validate.Length(max=500)],
                        metadata={**URL_DOC, "example": "https://zjj.example.gov.cn/sanzhang/webhook"})
    enabled = fields.Boolean(load_default=True, metadata={"example": True})
    rotate_secret = fields.Boolean(load_default=False,
                                   metadata={"example": False, "description": "true：生成新的签名密钥（旧密钥立即失效）"})


class WebhookOut(Schema):
    url = fields.String()
    enabled = fields.Boolean()
    secret = fields.String(allow_none=True, metadata={
        "example": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "description": "签名密钥，仅在新建或轮换时返回一次"})
    secret_created_at = fields.String(allow_none=True)


class CredentialIn(_In):
    label = fields.String(validate=validate.Length(min=1, max=60), metadata={"example": "住建局业务系统 2026"})


class CredentialOut(Schema):
    key_id = fields.String(attribute="_id", metadata={"example": "dk_3f9a1c0e5b7d2468"})
    label = fields.String(allow_none=True)
    created_at = fields.String()
    revoked_at = fields.String(allow_none=True)
    last_used_at = fields.String(allow_none=True)
    active = fields.Function(lambda c: not c.get("revoked_at"))


class CredentialIssued(CredentialOut):
    secret = fields.String(metadata={"example": "q3Zx…（仅显示一次）"})
    token = fields.String(metadata={"example": "dk_3f9a1c0e5b7d2468.q3Zx…",
                                    "description": "Authorization: Bearer <token>；仅显示一次"})


class MatrixRowIn(_In):
    category = fields.String(required=True, validate=validate.OneOf(list(CATEGORIES)), metadata={"example": "housing"})
    township = fields.String(validate=TOWNSHIP_CODE, allow_none=True,
                             metadata={"example": "430382102", "description": "不填：全市通用"})
    lead = fields.String(required=True, validate=validate.Length(min=1, max=60),
                         metadata={"example": "430382-zjj", "description": "牵头部门编号或名称"})
    co = fields.List(fields.String(validate=validate.Length(min=1, max=60)), load_default=list,
                     validate=validate.Length(max=10), metadata={"example": ["430382-zrzy"]})


class MatrixRowQuery(_In):
    category = fields.String(required=True, validate=validate.OneOf(list(CATEGORIES)))
    township = fields.String(validate=TOWNSHIP_CODE)


class MatrixImportQuery(ImportQuery):
    """The matrix's import query: shared.import_schemas.ImportQuery."""


class MatrixPreviewOut(PreviewOut):
    city = fields.String()
    summary = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": "added, changed, removed 的行数"})


class MatrixOut(Schema):
    city = fields.String(metadata={"example": "430382"})
    rows = fields.List(fields.Dict(), metadata={"example": [{"category": "housing", "township": None,
                                                             "lead": "430382-zjj", "lead_name": "韶山市住房和城乡建设局",
                                                             "co": ["430382-zrzy"], "co_names": ["韶山市自然资源局"]}]})
    missing = fields.List(fields.Dict(), metadata={"description": "缺少全市通用牵头部门的类别",
                                                   "example": [{"category": "policy", "name": "政策咨询"}]})
    updated_at = fields.String(allow_none=True)
    updated_by = fields.String(allow_none=True)
    source = fields.String(allow_none=True)


# -- a department's work --------------------------------------------------------------------------

class AcceptIn(_In):
    note = fields.String(validate=TEXT, metadata={"example": "已签收，安排房屋安全鉴定"})


class ProgressIn(_In):
    note = fields.String(required=True, validate=TEXT, metadata={"example": "已委托鉴定机构，预计3个工作日出报告"})


class ExtensionIn(_In):
    working_days = fields.Integer(required=True, validate=validate.Range(min=1, max=60),
                                  metadata={"example": 5, "description": "申请延长的工作日数"})
    reason = fields.String(required=True, validate=TEXT, metadata={"example": "需等待第三方鉴定报告"})


class ReturnIn(_In):
    reason = fields.String(required=True, validate=TEXT,
                           metadata={"example": "该路段属省道，养护责任在省公路事务中心，不属本局职责"})
    evidence = fields.List(fields.String(validate=[LINK, validate.Length(max=500)], metadata=LINK_DOC), required=True,
                           validate=validate.Length(min=1, max=10, error="请提供1到10个依据链接"),
                           metadata={"example": ["https://zjj.example.gov.cn/docs/duty-list-2026.pdf"],
                                     "description": "依据（权责清单、文件等）的链接"})


class CoPartIn(_In):
    note = fields.String(required=True, validate=TEXT, metadata={"example": "已完成燃气管道安全检查，无隐患"})
    attachments = fields.List(fields.String(validate=[LINK, validate.Length(max=500)], metadata=LINK_DOC),
                              load_default=list,
                              validate=validate.Length(max=20),
                              metadata={"example": ["https://rq.example.gov.cn/files/check-0412.jpg"]})


class SignOffIn(_In):
    resolution = fields.String(required=True, validate=TEXT,
                               metadata={"example": "已完成屋面防水维修，住户确认不再漏水"})
    attachments = fields.List(fields.String(validate=[LINK, validate.Length(max=500)], metadata=LINK_DOC),
                              load_default=list,
                              validate=validate.Length(max=20),
                              metadata={"example": ["https://zjj.example.gov.cn/files/after-repair.jpg"]})


class UploadedFile(Schema):
    url = fields.String(metadata={"example": "/dept/files/attachment-3f2a…", "description": "填入 attachments 或 evidence"})
    content_type = fields.String(metadata={"example": "image/jpeg"})
    size = fields.Integer()


class FilesOut(Schema):
    items = fields.List(fields.Nested(UploadedFile))


class DepartmentCasesQuery(_In):
    status = fields.List(fields.String(validate=validate.OneOf(PART_STATUSES)),
                         metadata={"description": "本部门在该工单中的状态，可重复：assigned 待签收 / accepted 办理中 / "
                                                  "returned 已退单 / submitted 已提交配合意见 / signed_off 已销号",
                                   "example": ["assigned", "accepted"]})
    township = fields.String(validate=TOWNSHIP_CODE, metadata={"example": "430382100"})
    due_before = Moment(metadata={"example": "2026-11-10T00:00:00+08:00", "description": "当前时限早于此时间"})
    changed_since = Moment(metadata={"example": "2026-11-02T00:00:00Z", "description": "此时间以来有变化的"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200), metadata={"example": 50})
    cursor = fields.String(validate=validate.Length(max=500),
                           metadata={"description": "上一页返回的 next_cursor"})


class DepartmentCaseRowOut(Schema):
    case_id = fields.String(metadata={"example": "9b2f0c7e1d8a4b6c9e3f5a7b1c2d4e6f"})
    tracking_no = fields.String(metadata={"example": "K7M2P9QX"})
    township = fields.String(metadata={"example": "430382100"})
    category = fields.String(metadata={"example": "housing"})
    category_name = fields.Function(lambda r: CATEGORIES.get(r["category"], r["category"]),
                                    metadata={"example": "住房物业"})
    summary = fields.String(allow_none=True, metadata={"example": "老旧小区3栋屋顶漏水，多次反映未解决"})
    urgent = fields.Boolean()
    role = fields.String(metadata={"example": "lead", "description": "lead 牵头 / co 配合"})
    status = fields.String(metadata={"example": "assigned"})
    status_text = fields.Function(lambda r: PART_STATUS_TEXT.get(r["status"], r["status"]),
                                  metadata={"example": "待签收"})
    case_status = fields.String(metadata={"example": "assigned"})
    due_at = fields.String(allow_none=True, metadata={"example": "2026-11-03T01:00:00.000000Z",
                                                      "description": "当前时限：待签收时为签收时限，办理中为办结时限"})
    accept_due = fields.String()
    finish_due = fields.String()
    changed_at = fields.String(metadata={"example": "2026-11-02T01:00:00.000000Z"})


class DepartmentCasePageOut(Schema):
    items = fields.List(fields.Nested(DepartmentCaseRowOut))
    next_cursor = fields.String(allow_none=True, metadata={"description": "还有下一页时返回；为 null 表示已到末尾"})


class DepartmentPartOut(Schema):
    department_id = fields.String(metadata={"example": "430382-zjj"})
    department_name = fields.String(metadata={"example": "韶山市住房和城乡建设局"})
    role = fields.String(metadata={"example": "lead"})
    role_text = fields.String(metadata={"example": "牵头部门"})
    status = fields.String(metadata={"example": "accepted"})
    status_text = fields.String(metadata={"example": "办理中"})
    assigned_at = fields.String()
    accepted_at = fields.String(allow_none=True)
    accept_due = fields.String()
    finish_due = fields.String()
    due_at = fields.String(allow_none=True)
    return_until = fields.String(allow_none=True, metadata={"description": "可退单的截止时间"})
    return_used = fields.Boolean()
    returned = fields.Dict(allow_none=True)
    extensions = fields.List(fields.Dict())
    breaches = fields.List(fields.Dict())
    submission = fields.Dict(allow_none=True)
    sign_off = fields.Dict(allow_none=True)
    round = fields.Integer()


class ReferralCaseOut(Schema):
    case_id = fields.String(metadata={"example": "9b2f0c7e1d8a4b6c9e3f5a7b1c2d4e6f"})
    tracking_no = fields.String(metadata={"example": "K7M2P9QX"})
    report_id = fields.String()
    township = fields.String(metadata={"example": "430382100"})
    city = fields.String(metadata={"example": "430382"})
    category = fields.String(metadata={"example": "housing"})
    category_name = fields.String(metadata={"example": "住房物业"})
    tier = fields.String(allow_none=True, metadata={"example": "difficult"})
    urgent = fields.Boolean()
    summary = fields.String(allow_none=True)
    promise_due = fields.String(allow_none=True)
    case_status = fields.String(metadata={"example": "assigned"})
    case_status_text = fields.String(metadata={"example": "部门办理中"})
    lead_department_id = fields.String(allow_none=True)
    my_part = fields.Nested(DepartmentPartOut, allow_none=True)
    parts = fields.List(fields.Nested(DepartmentPartOut))
    referral = fields.Dict(metadata={"description": "镇(街道)上报的原因和经办单位"})
    report = fields.Dict(allow_none=True, metadata={
        "description": "群众诉求原文；电话按部门权限脱敏",
        "example": {"description": "3栋屋顶漏水", "address": "韶山村一组3栋", "reporter_phone": "138****0001"}})
    resolution = fields.Dict(allow_none=True)
    timeline = fields.List(fields.Dict(), metadata={"description": "时间线：谁、何时、做了什么、为什么"})
    created_at = fields.String()
    updated_at = fields.String()


class DepartmentSelfOut(Schema):
    id = fields.String(attribute="_id")
    city = fields.String()
    name = fields.String()
    sees_phone = fields.Boolean()
    effective_sla = fields.Dict()
    webhook = fields.Function(lambda d: {k: v for k, v in (d.get("webhook") or {}).items() if k != "secret"} or None)
    credentials = fields.List(fields.Nested(CredentialOut))


# -- the township's decisions ---------------------------------------------------------------------

class ApproveIn(_In):
    working_days = fields.Integer(validate=validate.Range(min=1, max=60),
                                  metadata={"example": 5, "description": "批准的工作日数；不填按申请"})
    note = fields.String(validate=TEXT, metadata={"example": "同意延期，请按期办结"})


class RefuseIn(_In):
    note = fields.String(required=True, validate=TEXT, metadata={"example": "现有时限足够，请按期办结"})


class LeadIn(_In):
    department_id = fields.String(required=True, validate=validate.Length(min=1, max=60),
                                  metadata={"example": "430382-jtj"})
    note = fields.String(validate=TEXT, metadata={"example": "经核实属交通运输局职责，改派办理"})


class RulingIn(_In):
    ruling = fields.String(required=True, validate=TEXT,
                           metadata={"example": "经核查该小区未移交物业，属住建局监管职责，请依责办理"})


class ReferralsQuery(_In):
    status = fields.String(validate=validate.OneOf(list(CASE_STATUS_TEXT)), metadata={"example": "returned"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100_000))


class ReferralRowOut(Schema):
    case_id = fields.String(attribute="_id")
    tracking_no = fields.String()
    category = fields.String()
    summary = fields.String(allow_none=True)
    case_status = fields.String(attribute="status")
    case_status_text = fields.Function(lambda d: CASE_STATUS_TEXT.get(d["status"], d["status"]))
    lead_department_id = fields.String(attribute="lead", allow_none=True)
    pending_extensions = fields.Function(
        lambda d: [{"extension_id": e["id"], "department_id": p["department_id"], "department_name": p["department_name"],
                    "working_days": e["working_days"], "reason": e["reason"]}
                   for p in d["parts"] for e in p.get("extensions", []) if e["status"] == "pending"])
    updated_at = fields.String()



class WebhookDeliveriesQuery(_In):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class WebhookDeliveryOut(Schema):
    webhook_id = fields.Function(lambda d: "msg_" + d["_id"], metadata={"description": "请求头 webhook-id"})
    event_id = fields.String()
    event_type = fields.String(metadata={"example": "department.assigned"})
    case_id = fields.String(allow_none=True)
    status = fields.String(metadata={"example": "delivered", "description": "pending / delivered / failed / cancelled"})
    attempts = fields.Integer(metadata={"example": 2})
    next_due = fields.String(allow_none=True, metadata={"description": "下次重试时间"})
    last_status = fields.Integer(allow_none=True, metadata={"example": 500})
    last_error = fields.String(allow_none=True)
    created_at = fields.String()
    delivered_at = fields.String(allow_none=True)
