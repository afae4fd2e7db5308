"""notify's HTTP edge: the delivery log and dead letters for staff, templates per township, and
the SMS providers' delivery receipts."""
from __future__ import annotations

import hmac
import logging

from flask import request
from flask_smorest import Blueprint, abort
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.auth import current_principal, require, require_township
from shared.events import TOWNSHIP_CODE

from .templates import TEMPLATES, check_template

log = logging.getLogger(__name__)

STATUSES = ("queued", "claimed", "sending", "retrying", "sent", "delivered", "failed", "unknown", "merged", "skipped")


class DeliveryQuery(Schema):
    class Meta:
        unknown = RAISE

    township = fields.String(required=True, validate=TOWNSHIP_CODE)
    case_id = fields.String(validate=validate.Length(max=64))
    status = fields.String(validate=validate.OneOf(STATUSES))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 100000))


class DeliveryOut(Schema):
    id = fields.String(attribute="_id")
    case_id = fields.String(allow_none=True)
    tracking_no = fields.String(allow_none=True)
    event_type = fields.String()
    template_key = fields.String()
    recipient_role = fields.String()
    recipient_kind = fields.String()
    recipient_name = fields.String(allow_none=True)
    channel = fields.String()
    phone_masked = fields.String(allow_none=True)
    text = fields.String()
    length = fields.Integer()
    segments = fields.Integer()
    status = fields.String()
    hold_reason = fields.String(allow_none=True)
    due_at = fields.String(allow_none=True)
    attempts = fields.Integer()
    next_attempt_at = fields.String(allow_none=True)
    provider_message_id = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    error_detail = fields.String(allow_none=True)
    fallback_of = fields.String(allow_none=True)
    forwarded_from = fields.Dict(allow_none=True, metadata={
        "description": "原收件岗位无有效联系方式时，消息转给了下一位能处理的人：原岗位 {unit_id, level, unit_name, title, name, label}"})
    address_missing = fields.Boolean(metadata={"description": "收件人没有任何联系方式（控制台渠道仍会记录，真实渠道无法送达）"})
    merged_into = fields.String(allow_none=True)
    merged_count = fields.Function(lambda d: len(d.get("merged") or []))
    created_at = fields.String()
    sent_at = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)


class DeadQuery(Schema):
    class Meta:
        unknown = RAISE

    township = fields.String(required=True, validate=TOWNSHIP_CODE)
    case_id = fields.String(validate=validate.Length(max=64))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 100000))


class DeadOut(Schema):
    id = fields.String(attribute="_id")
    case_id = fields.String(allow_none=True)
    tracking_no = fields.String(allow_none=True)
    event_type = fields.String()
    recipient_role = fields.String()
    recipient_name = fields.String(allow_none=True)
    phone_masked = fields.String(allow_none=True)
    route = fields.List(fields.String(), allow_none=True)
    last_delivery_id = fields.String(allow_none=True)
    reason = fields.String()
    text = fields.String(allow_none=True)
    at = fields.String()


class TemplatesIn(Schema):
    """Overrides for a township: template key -> text; null or "" returns a key to the default.
    The set sent replaces the township's previous overrides."""

    class Meta:
        unknown = RAISE

    templates = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True, validate=validate.Length(max=300)),
                            required=True)

    @validates_schema
    def known_keys_and_variables(self, data, **kwargs):
        errors = {}
        for key, text in (data.get("templates") or {}).items():
            if key not in TEMPLATES:
                errors[key] = [f"未知的模板：{key}"]
            elif text:
                problems = check_template(key, text)
                if problems:
                    errors[key] = problems
        if errors:
            raise ValidationError({"templates": errors})


class TemplateRow(Schema):
    key = fields.String()
    event_type = fields.String()
    role = fields.String()
    default = fields.String()
    override = fields.String(allow_none=True)
    variables = fields.List(fields.String())
    sample = fields.String()
    length = fields.Integer()
    segments = fields.Integer()


class TemplatesOut(Schema):
    township = fields.String()
    signature = fields.String()
    templates = fields.List(fields.Nested(TemplateRow))
    updated_at = fields.String(allow_none=True)
    updated_by = fields.String(allow_none=True)


class AliyunReceipt(Schema):
    """One item of Alibaba Cloud's SmsReport push (an array of these)."""

    class Meta:
        unknown = EXCLUDE

    biz_id = fields.String(required=True)
    out_id = fields.String(allow_none=True)
    success = fields.Boolean(required=True)
    err_code = fields.String(allow_none=True)
    err_msg = fields.String(allow_none=True)
    report_time = fields.String(allow_none=True)
    send_time = fields.String(allow_none=True)
    phone_number = fields.String(allow_none=True)  # read, never stored or logged
    sms_size = fields.Raw(allow_none=True)


class TencentReceipt(Schema):
    """One item of Tencent Cloud's SMS status callback (an array of these)."""

    class Meta:
        unknown = EXCLUDE

    sid = fields.String(required=True)
    report_status = fields.String(required=True, validate=validate.OneOf(("SUCCESS", "FAIL")))
    errmsg = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    user_receive_time = fields.String(allow_none=True)
    mobile = fields.String(allow_none=True)  # read, never stored or logged
    nationcode = fields.String(allow_none=True)
    ext = fields.Raw(allow_none=True)  # our SessionContext, when the platform echoes it


RECEIPTS = {"aliyun": ("aliyun_sms", AliyunReceipt), "tencent": ("tencent_sms", TencentReceipt)}


def build_blueprint(service) -> Blueprint:
    bp = Blueprint("notify", __name__, url_prefix="/api/v1", description="通知：短信、企业微信、公众号与投递记录")

    @bp.route("/deliveries", methods=["GET"])
    @require("operator", "staff")
    @bp.arguments(DeliveryQuery, location="query")
    @bp.response(200, DeliveryOut(many=True))
    @bp.alt_response(404, description="township 不在凭证范围内（与不存在的镇相同）")
    def deliveries(query):
        """投递记录（按镇、按工单、按状态查询）"""
        require_township(query["township"])
        return service.log_for(query["township"], query.get("case_id"), query["limit"], query["offset"],
                               query.get("status"))

    @bp.route("/deliveries/dead", methods=["GET"])
    @require("operator", "staff")
    @bp.arguments(DeadQuery, location="query")
    @bp.response(200, DeadOut(many=True))
    @bp.alt_response(404, description="township 不在凭证范围内（与不存在的镇相同）")
    def dead(query):
        """无法送达的通知（所有渠道均失败或无联系方式）"""
        require_township(query["township"])
        return service.dead_letters(query["township"], query.get("case_id"), query["limit"], query["offset"])

    @bp.route("/townships/<string:code>/templates", methods=["GET"])
    @bp.response(200, TemplatesOut)
    @require("operator", "staff")
    def get_templates(code):
        """本镇的通知模板（默认、覆盖、可用变量、示例与计费条数）"""
        _township(code)
        return service.template_view(code)

    @bp.route("/townships/<string:code>/templates", methods=["PUT"])
    @require("operator", "staff")
    @bp.arguments(TemplatesIn)
    @bp.response(200, TemplatesOut)
    def put_templates(body, code):
        """替换本镇的模板覆盖（null 或空字符串恢复默认）"""
        _township(code)
        principal = current_principal()
        return service.set_templates(code, body["templates"], principal.name or principal.role)

    def receipts(provider: str, key: str | None = None):
        """短信平台的状态回执（阿里云 SmsReport、腾讯云状态回调）。以路径或 ?key= 中的共享密钥保护。"""
        secret = service.settings.receipt_secret
        given = key or request.args.get("key") or ""
        if provider not in RECEIPTS or not secret or not hmac.compare_digest(given.encode(), secret.encode()):
            abort(404, message="未找到")
        channel, schema = RECEIPTS[provider]
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list):
            abort(400, message="回执应为 JSON 数组")
        try:
            items = schema(many=True).load(body)
        except ValidationError as exc:
            abort(422, errors={"json": exc.messages})
        matched = 0
        for item in items:
            if provider == "aliyun":
                ok = item["success"]
                matched += service.receipt(channel, item["biz_id"], item.get("out_id"), ok,
                                           None if ok else (item.get("err_code") or "FAIL"), item.get("report_time"))
            else:
                ok = item["report_status"] == "SUCCESS"
                ext = item.get("ext")
                matched += service.receipt(channel, item["sid"], ext if isinstance(ext, str) else None, ok,
                                           None if ok else (item.get("errmsg") or "FAIL"), item.get("user_receive_time"))
        log.info("notify receipts provider=%s items=%s matched=%s", provider, len(items), matched)
        # Each platform's documented acknowledgement; anything else makes it push again.
        if provider == "aliyun":
            return {"code": 0, "msg": "接收成功"}
        return {"result": 0, "errmsg": "OK"}

    bp.add_url_rule("/receipts/<string:provider>", "receipts", receipts, methods=["POST"])
    bp.add_url_rule("/receipts/<string:provider>/<string:key>", "receipts_keyed", receipts, methods=["POST"])

    return bp


def _township(code: str) -> None:
    try:
        TOWNSHIP_CODE(code)
    except ValidationError:
        abort(404, message="未找到")
    require_township(code)
