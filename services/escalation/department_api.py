"""The departments' API: a department (by its credential, or a signed token with role
``department``) reads the cases referred to it and acts on them — accept, progress, extension,
return, co-part, sign-off — and rotates its own credentials. It sees only cases it has a part in
(anything else is 404)."""
from __future__ import annotations

from flask import request
from flask_smorest import Blueprint, abort
from marshmallow import RAISE

from shared.auth import current_principal, require

from .attachments import FIELD as FILES, MAX_BODY, MAX_BYTES, MAX_FILES
from .api_support import (CONFLICT, IDEMPOTENCY_HEADER, error_body, fail, issue_credential_for, respond,
                          revoke_credential_of, with_effective)
from .idempotency import MAX_KEY, InProgress, KeyReused, fingerprint
from .model import Conflict, Hidden
from .schemas import (AcceptIn, CoPartIn, CredentialIn, CredentialIssued, CredentialOut, DepartmentCasePageOut,
                      DepartmentCasesQuery, DepartmentSelfOut, ExtensionIn, FilesOut, ProgressIn, ReferralCaseOut, ReturnIn,
                      SignOffIn, WebhookDeliveriesQuery, WebhookDeliveryOut)
from .service import BadField, EscalationService, NotAllowed, case_view


def build_department_blueprint(service: EscalationService) -> Blueprint:
    dept_bp = Blueprint("department-api", __name__, url_prefix="/api/v1",
                        description="市直部门接口：查询交办的工单，签收、进展、延期、退单、配合意见、销号")
    # Registered in this order so the OpenAPI document lists the operations as it always has.
    _self_routes(dept_bp, service)
    _case_routes(dept_bp, service)
    _action_routes(dept_bp, service)
    _file_routes(dept_bp, service)
    return dept_bp


def _department(service: EscalationService) -> dict:
    try:
        return service.department_for(current_principal())
    except NotAllowed as exc:
        abort(403, message=str(exc))


def _self_routes(dept_bp: Blueprint, service: EscalationService) -> None:
    """The department itself: who it is, its credentials, its webhook deliveries."""
    directory = service.directory

    @dept_bp.route("/department", methods=["GET"])
    @require("department")
    @dept_bp.response(200, DepartmentSelfOut)
    def whoami():
        """本部门信息、实际时限与凭证列表"""
        dept = _department(service)
        return {**with_effective(service, dept), "credentials": directory.credentials_of(dept["_id"])}

    @dept_bp.route("/department/credentials", methods=["POST"])
    @require("department")
    @dept_bp.arguments(CredentialIn)
    @dept_bp.response(201, CredentialIssued)
    @dept_bp.alt_response(409, description="已有2个有效凭证：先吊销一个")
    def rotate_own(body):
        """轮换：为本部门签发新凭证（最多同时2个有效），切换后吊销旧凭证"""
        dept = _department(service)
        return issue_credential_for(service, dept["_id"], body.get("label"), dept["name"])

    @dept_bp.route("/department/credentials/<string:key_id>", methods=["DELETE"])
    @require("department")
    @dept_bp.response(200, CredentialOut)
    def revoke_own(key_id):
        """吊销本部门的一个凭证（立即失效）"""
        dept = _department(service)
        return revoke_credential_of(service, dept["_id"], key_id, dept["name"])

    @dept_bp.route("/department/deliveries", methods=["GET"])
    @require("department")
    @dept_bp.arguments(WebhookDeliveriesQuery, location="query", unknown=RAISE)
    @dept_bp.response(200, WebhookDeliveryOut(many=True))
    def deliveries(query):
        """本部门最近的 Webhook 投递记录（新的在前）：状态、尝试次数、最后一次的 HTTP 状态"""
        dept = _department(service)
        return service.webhooks.of_department(dept["_id"], limit=query["limit"])


def _case_routes(dept_bp: Blueprint, service: EscalationService) -> None:
    """Reading the cases referred to the department."""

    @dept_bp.route("/department/cases", methods=["GET"])
    @require("department")
    @dept_bp.arguments(DepartmentCasesQuery, location="query", unknown=RAISE)
    @dept_bp.response(200, DepartmentCasePageOut)
    def list_cases(query):
        """交办给本部门的工单，按变化时间从早到晚。轮询：保存 next_cursor，下次从它继续；或用 changed_since。"""
        try:
            items, cursor = service.list_for_department(
                current_principal(), statuses=query.get("status"), township=query.get("township"),
                due_before=query.get("due_before"), changed_since=query.get("changed_since"),
                limit=query["limit"], cursor=query.get("cursor"))
        except BadField as exc:
            return fail(422, exc.message, field=exc.field, location="query")
        except NotAllowed as exc:
            abort(403, message=str(exc))
        return {"items": items, "next_cursor": cursor}

    @dept_bp.route("/department/cases/<string:case_id>", methods=["GET"])
    @require("department")
    @dept_bp.response(200, ReferralCaseOut)
    def read_case(case_id):
        """工单详情：群众诉求、镇街上报原因、各部门进度、完整时间线"""
        try:
            doc, dept = service.department_case(current_principal(), case_id)
        except Hidden:
            abort(404, message="未找到该工单")
        except NotAllowed as exc:
            abort(403, message=str(exc))
        return case_view(doc, dept=dept)


UPLOAD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [FILES],
    "properties": {FILES: {"type": "array", "maxItems": MAX_FILES, "items": {"type": "string", "format": "binary"}}}}}}}


def _file_routes(dept_bp: Blueprint, service: EscalationService) -> None:
    @dept_bp.route("/department/cases/<string:case_id>/files", methods=["POST"])
    @require("department")
    @dept_bp.doc(requestBody=UPLOAD_BODY)
    @dept_bp.response(201, FilesOut)
    @dept_bp.alt_response(404, description="本部门没有这件工单")
    @dept_bp.alt_response(413, description="请求体过大（最多9个文件、每个10MB）")
    @dept_bp.alt_response(422, description="没有文件，或文件类型、大小、个数不符")
    def upload(case_id):
        """上传附件：照片（JPEG、PNG、WebP）或PDF，multipart 字段 files，最多9个、每个不超过10MB（按文件内容识别类型）。
        返回的地址填入销号、配合意见的 attachments 或退单的 evidence；同一文件重传得到同一地址。"""
        request.max_content_length = MAX_BODY   # before the body is read
        files = [f.read(MAX_BYTES + 1) for f in request.files.getlist(FILES) if f.filename]
        try:
            if not files:
                service.department_case(current_principal(), case_id)   # the wall before the input
                return fail(422, "请选择要上传的文件（字段 files）", field=FILES, location="files")
            return {"items": service.upload(current_principal(), case_id, files)}, 201
        except Hidden:
            abort(404, message="未找到该工单")
        except NotAllowed as exc:
            abort(403, message=str(exc))
        except BadField as exc:
            return fail(422, exc.message, field=exc.field, location="files")


def _action_docs(dept_bp: Blueprint):
    def action_docs(view):
        view = dept_bp.doc(parameters=[IDEMPOTENCY_HEADER])(view)
        view = dept_bp.alt_response(409, description=CONFLICT)(view)
        return dept_bp.alt_response(404, description="本部门没有这件工单")(view)
    return action_docs


def _action_routes(dept_bp: Blueprint, service: EscalationService) -> None:
    """The department's actions on a case; each may carry an Idempotency-Key."""
    action_docs = _action_docs(dept_bp)

    @dept_bp.route("/department/cases/<string:case_id>/accept", methods=["POST"])
    @require("department")
    @dept_bp.arguments(AcceptIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def accept(body, case_id):
        """签收"""
        return _department_action(service, "accept", case_id, body, note=body.get("note"))

    @dept_bp.route("/department/cases/<string:case_id>/progress", methods=["POST"])
    @require("department")
    @dept_bp.arguments(ProgressIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def progress(body, case_id):
        """填报办理进展（签收后）"""
        return _department_action(service, "progress", case_id, body, note=body["note"])

    @dept_bp.route("/department/cases/<string:case_id>/extension", methods=["POST"])
    @require("department")
    @dept_bp.arguments(ExtensionIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def extension(body, case_id):
        """申请延期：写明理由和延长的工作日数；镇(街道)批准后办结时限才会顺延"""
        return _department_action(service, "extension", case_id, body, working_days=body["working_days"],
                                  reason=body["reason"])

    @dept_bp.route("/department/cases/<string:case_id>/return", methods=["POST"])
    @require("department")
    @dept_bp.arguments(ReturnIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def return_case(body, case_id):
        """退单（牵头部门，交办后规定时限内）：不属本部门职责，写明理由并附依据链接；镇(街道)改派或裁定"""
        return _department_action(service, "return", case_id, body, reason=body["reason"],
                                  evidence=body["evidence"])

    @dept_bp.route("/department/cases/<string:case_id>/part", methods=["POST"])
    @require("department")
    @dept_bp.arguments(CoPartIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def submit_part(body, case_id):
        """提交配合意见（配合部门，签收后）"""
        return _department_action(service, "part", case_id, body, note=body["note"],
                                  attachments=body["attachments"])

    @dept_bp.route("/department/cases/<string:case_id>/sign-off", methods=["POST"])
    @require("department")
    @dept_bp.arguments(SignOffIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def sign_off(body, case_id):
        """销号（牵头部门）：签收后、所有配合部门提交配合意见后，写明办理结果"""
        return _department_action(service, "sign_off", case_id, body, resolution=body["resolution"],
                                  attachments=body["attachments"])


def _department_action(service: EscalationService, action: str, case_id: str, body: dict, **kwargs):
    principal = current_principal()
    key = request.headers.get("Idempotency-Key")
    scope = principal.department_id or ""
    if key is not None:
        key = key.strip()
        if not 1 <= len(key) <= MAX_KEY:
            return fail(422, f"Idempotency-Key 长度须为1到{MAX_KEY}", field="Idempotency-Key",
                         location="headers")
        try:
            replay = service.idempotency.begin(scope, key, fingerprint(request.method, request.path, body))
        except KeyReused:
            return fail(422, "该 Idempotency-Key 已用于另一个请求", code="idempotency_key_reused",
                         field="Idempotency-Key", location="headers")
        except InProgress:
            return fail(409, "使用该 Idempotency-Key 的请求仍在处理中，请稍后重试", code="idempotency_in_progress")
        if replay is not None:
            return respond(replay.status, replay.body, replayed=True)
    try:
        doc, dept = service.act(principal, case_id, action, idempotency_key=key, **kwargs)
        status, out = 200, ReferralCaseOut().dump(case_view(doc, dept=dept))
    except Hidden:
        status, out = 404, error_body(404, "未找到该工单")
    except NotAllowed as exc:
        status, out = 403, error_body(403, str(exc))
    except Conflict as exc:
        status, out = 409, error_body(409, exc.message, code=exc.code)
    except BadField as exc:
        status, out = 422, error_body(422, exc.message, field=exc.field)
    except Exception:
        if key:
            service.idempotency.abandon(scope, key)
        raise
    if key:
        service.idempotency.finish(scope, key, status, out)
    return respond(status, out)
