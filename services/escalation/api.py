"""escalation's HTTP edge: departments and the matrix (admin), the sign-off API (departments), and
the township's decisions on referred cases (staff). Decode, validate, call the service, map errors.

Who may do what:

- operator: everything.
- city staff: a ``staff`` token whose ``scopes`` include ``city`` and whose townships lie in the city
  (code starts with the 6-digit city code) manages that city's departments, credentials, webhooks and
  matrix. Township staff of the city may read the departments and the matrix (to choose a lead);
  staff of other cities get 404.
- department: a department credential (``Bearer <key_id>.<secret>``) or a signed token with role
  ``department``; sees and acts only on cases it has a part in (anything else is 404).
- township staff: decide extensions, re-route a returned case, rule on a return — for their townships.

Errors are JSON ``{"code", "status", "message"}``; a 409 adds ``error_code`` (machine-readable), a
422 ``errors`` naming the field.
"""
from __future__ import annotations

from flask import jsonify, request
from marshmallow import RAISE
from flask_smorest import Blueprint, abort
from werkzeug.http import HTTP_STATUS_CODES

from shared.auth import current_principal, require, require_township
from shared.web import masked, spreadsheet_body

from .directory import DirectoryError
from .idempotency import MAX_KEY, InProgress, KeyReused, fingerprint
from .matrix import MatrixError
from .model import Conflict, Hidden
from .schemas import (ApproveIn, ReferralCaseOut, DepartmentCasesQuery, DepartmentCasePageOut, CityIn, CityOut, CredentialIn,
                      CredentialIssued, CredentialOut, DepartmentIn, DepartmentOut, DepartmentPatch,
                      DepartmentSelfOut, ExtensionIn, MatrixImportQuery, LeadIn, MatrixOut, MatrixRowIn, MatrixRowQuery,
                      ProgressIn, AcceptIn, CoPartIn, ReferralRowOut, ReferralsQuery, RefuseIn, ReturnIn, RulingIn,
                      SignOffIn, WebhookIn, WebhookOut, WebhookDeliveriesQuery, WebhookDeliveryOut)
from .service import BadField, EscalationService, NotAllowed, case_view

MAX_MATRIX_BYTES = 5 * 1024 * 1024
STAFF = ("operator", "staff")
CONFLICT = "当前状态不允许此操作：message 说明原因，error_code 为机器可读代码"
IDEMPOTENCY_HEADER = {
    "in": "header", "name": "Idempotency-Key", "required": False, "schema": {"type": "string", "maxLength": MAX_KEY},
    "description": "重放保护：同一部门用同一个键重发同一请求，返回第一次的结果且不再改变任何数据（保留24小时）",
    "example": "3b1f6c1e-0d55-4f57-9a4c-5b3b0c7a9e21",
}


def _body(status: int, message: str, *, code: str | None = None, field: str | None = None,
          location: str = "json") -> dict:
    body = {"code": status, "status": HTTP_STATUS_CODES.get(status, "Error"), "message": message}
    if code:
        body["error_code"] = code
    if field:
        body["errors"] = {location: {field: [message]}}
    return body


def _respond(status: int, body: dict, replayed: bool = False):
    # An error may quote what was sent (a name, a cell of the matrix): phone numbers in it are masked.
    response = jsonify(masked(body) if status >= 400 else body)
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _fail(status: int, message: str, **kw):
    return _respond(status, _body(status, message, **kw))


# -- who may administer a city ---------------------------------------------------------------------

def _in_city(principal, city: str) -> bool:
    return any(t.startswith(city) for t in principal.townships)


def city_reader(city: str):
    principal = current_principal()
    if principal.role == "operator" or (principal.role == "staff" and _in_city(principal, city)):
        return principal
    abort(404, message="未找到")


def city_admin(city: str):
    principal = city_reader(city)
    if principal.role != "operator" and "city" not in principal.scopes:
        abort(403, message="需要市级管理权限（staff 凭证须含 city 范围）")
    return principal


def build_blueprints(service: EscalationService) -> list[Blueprint]:
    directory = service.directory

    def department_or_404(dept_id: str) -> dict:
        dept = directory.department(dept_id)
        if dept is None:
            # The same answer as another city's department (city_reader): existence does not leak.
            abort(404, message="未找到")
        return dept

    def with_effective(dept: dict) -> dict:
        return {**dept, "effective_sla": service.policy_for(dept).as_text()}

    # ============================================================ administration
    admin = Blueprint("escalation-admin", __name__, url_prefix="/api/v1",
                      description="市直部门、凭证、Webhook 与责任清单（运维或市级工作人员）")

    @admin.route("/cities/<string:city>", methods=["PUT"])
    @require(*STAFF)
    @admin.arguments(CityIn)
    @admin.response(200, CityOut)
    def put_city(body, city):
        """登记或修改一个市：名称、督办联系人、本市部门默认时限"""
        _check_city(city)
        principal = city_admin(city)
        return directory.put_city(city, body, actor=principal.name or principal.role)

    @admin.route("/cities/<string:city>", methods=["GET"])
    @require(*STAFF)
    @admin.response(200, CityOut)
    def get_city(city):
        """读取市的设置"""
        _check_city(city)
        city_reader(city)
        doc = directory.city(city)
        if doc is None:
            abort(404, message="该市尚未登记")
        return doc

    @admin.route("/cities/<string:city>/departments", methods=["POST"])
    @require(*STAFF)
    @admin.arguments(DepartmentIn)
    @admin.response(201, DepartmentOut)
    @admin.alt_response(409, description="编号或名称已被使用")
    def create_department(body, city):
        """登记一个市直部门"""
        _check_city(city)
        principal = city_admin(city)
        try:
            return with_effective(directory.create_department(city, body, actor=principal.name or principal.role))
        except DirectoryError as exc:
            return _fail(409, exc.message, code=exc.code, field=exc.field)

    @admin.route("/cities/<string:city>/departments", methods=["GET"])
    @require(*STAFF)
    @admin.response(200, DepartmentOut(many=True))
    def list_departments(city):
        """本市的市直部门（镇街工作人员可读，用于改派时选择部门）"""
        _check_city(city)
        city_reader(city)
        return [with_effective(d) for d in directory.of_city(city)]

    @admin.route("/departments/<string:department_id>", methods=["GET"])
    @require(*STAFF)
    @admin.response(200, DepartmentOut)
    def get_department(department_id):
        """读取一个部门"""
        dept = department_or_404(department_id)
        city_reader(dept["city"])
        return with_effective(dept)

    @admin.route("/departments/<string:department_id>", methods=["PATCH"])
    @require(*STAFF)
    @admin.arguments(DepartmentPatch)
    @admin.response(200, DepartmentOut)
    @admin.alt_response(409, description="名称已被本市另一个部门使用")
    def patch_department(body, department_id):
        """修改部门：名称、联系人、是否可见完整电话、时限、停用"""
        dept = department_or_404(department_id)
        principal = city_admin(dept["city"])
        try:
            return with_effective(directory.patch_department(department_id, body, actor=principal.name or principal.role))
        except DirectoryError as exc:
            return _fail(409, exc.message, code=exc.code, field=exc.field)

    @admin.route("/departments/<string:department_id>/webhook", methods=["PUT"])
    @require(*STAFF)
    @admin.arguments(WebhookIn)
    @admin.response(200, WebhookOut)
    def put_webhook(body, department_id):
        """设置部门的 Webhook（Standard Webhooks 签名）；新建或轮换时返回一次签名密钥"""
        dept = department_or_404(department_id)
        principal = city_admin(dept["city"])
        doc, secret = directory.set_webhook(department_id, body["url"], body["enabled"], body["rotate_secret"],
                                            actor=principal.name or principal.role)
        return {**doc["webhook"], "secret": secret}

    @admin.route("/departments/<string:department_id>/webhook", methods=["DELETE"])
    @require(*STAFF)
    @admin.response(204)
    def delete_webhook(department_id):
        """删除部门的 Webhook（改为轮询）"""
        dept = department_or_404(department_id)
        principal = city_admin(dept["city"])
        directory.clear_webhook(department_id, actor=principal.name or principal.role)

    @admin.route("/departments/<string:department_id>/credentials", methods=["POST"])
    @require(*STAFF)
    @admin.arguments(CredentialIn)
    @admin.response(201, CredentialIssued)
    @admin.alt_response(409, description="已有2个有效凭证：先吊销一个")
    def issue_credential(body, department_id):
        """为部门签发接口凭证（key_id + secret，仅显示一次；最多同时2个有效，便于轮换）"""
        dept = department_or_404(department_id)
        principal = city_admin(dept["city"])
        return _issue(department_id, body.get("label"), principal.name or principal.role)

    @admin.route("/departments/<string:department_id>/credentials", methods=["GET"])
    @require(*STAFF)
    @admin.response(200, CredentialOut(many=True))
    def list_credentials(department_id):
        """部门的凭证（只有编号和时间，不含密钥）"""
        dept = department_or_404(department_id)
        city_admin(dept["city"])
        return directory.credentials_of(department_id)

    @admin.route("/departments/<string:department_id>/credentials/<string:key_id>", methods=["DELETE"])
    @require(*STAFF)
    @admin.response(200, CredentialOut)
    def revoke_credential(department_id, key_id):
        """吊销凭证：立即失效"""
        dept = department_or_404(department_id)
        principal = city_admin(dept["city"])
        return _revoke(department_id, key_id, principal.name or principal.role)

    @admin.route("/cities/<string:city>/matrix", methods=["GET"])
    @require(*STAFF)
    @admin.response(200, MatrixOut)
    def get_matrix(city):
        """责任清单：每个类别的牵头部门和配合部门；missing 列出缺少牵头部门的类别"""
        _check_city(city)
        city_reader(city)
        return service.matrix_view(city)

    @admin.route("/cities/<string:city>/matrix/rows", methods=["PUT"])
    @require(*STAFF)
    @admin.arguments(MatrixRowIn)
    @admin.response(200, MatrixOut)
    def put_matrix_row(body, city):
        """新增或替换一行（类别 + 可选的镇街；镇街专属行优先于全市通用行）"""
        _check_city(city)
        principal = city_admin(city)
        try:
            service.put_matrix_row(city, body, actor=principal.name or principal.role)
        except BadField as exc:
            return _fail(422, exc.message, field=exc.field)
        return service.matrix_view(city)

    @admin.route("/cities/<string:city>/matrix/rows", methods=["DELETE"])
    @require(*STAFF)
    @admin.arguments(MatrixRowQuery, location="query", unknown=RAISE)
    @admin.response(200, MatrixOut)
    def delete_matrix_row(query, city):
        """删除一行"""
        _check_city(city)
        principal = city_admin(city)
        try:
            service.matrix.delete_row(city, query["category"], query.get("township"), principal.name or principal.role)
        except LookupError:
            abort(404, message="责任清单中没有这一行")
        return service.matrix_view(city)

    @admin.route("/cities/<string:city>/matrix/import", methods=["POST"])
    @require(*STAFF)
    @admin.arguments(MatrixImportQuery, location="query", unknown=RAISE)
    @admin.response(200, MatrixOut)
    @admin.alt_response(422, description="清单有误：整份拒收，逐行列出错误（表头为第1行）")
    @admin.doc(requestBody=spreadsheet_body("责任清单"))
    def import_matrix(query, city):
        """导入责任清单（XLSX 或 CSV，UTF-8/GBK），整份替换本市清单。列：类别、镇(街道)代码、牵头部门、配合部门、备注。
        上传 multipart 字段 file，或以原始正文提交并给出 filename。"""
        _check_city(city)
        principal = city_admin(city)
        upload = request.files.get("file")
        if upload is not None:
            data, filename = upload.read(MAX_MATRIX_BYTES + 1), upload.filename or "matrix.xlsx"
        else:
            data, filename = request.get_data(), query.get("filename") or "matrix.csv"
        if not data:
            return _fail(400, "缺少责任清单文件", field="file", location="files")
        if len(data) > MAX_MATRIX_BYTES:
            return _fail(413, "责任清单文件过大")
        try:
            service.import_matrix(city, data, filename, actor=principal.name or principal.role)
        except MatrixError as exc:
            body = _body(422, "责任清单有误，未导入任何数据")
            body["errors"] = {"file": exc.errors}
            return _respond(422, body)
        return service.matrix_view(city)

    def _issue(department_id: str, label: str | None, actor: str):
        try:
            record, token = directory.issue_credential(department_id, label, actor=actor)
        except DirectoryError as exc:
            return _fail(409, exc.message, code=exc.code)
        return {**record, "secret": token.split(".", 1)[1], "token": token}

    def _revoke(department_id: str, key_id: str, actor: str):
        try:
            return directory.revoke_credential(department_id, key_id, actor=actor)
        except LookupError:
            abort(404, message="未找到该凭证")

    # ============================================================ the department API
    dept_bp = Blueprint("department-api", __name__, url_prefix="/api/v1",
                        description="市直部门接口：查询交办的工单，签收、进展、延期、退单、配合意见、销号")

    @dept_bp.route("/department", methods=["GET"])
    @require("department")
    @dept_bp.response(200, DepartmentSelfOut)
    def whoami():
        """本部门信息、实际时限与凭证列表"""
        dept = _department()
        return {**with_effective(dept), "credentials": directory.credentials_of(dept["_id"])}

    @dept_bp.route("/department/credentials", methods=["POST"])
    @require("department")
    @dept_bp.arguments(CredentialIn)
    @dept_bp.response(201, CredentialIssued)
    @dept_bp.alt_response(409, description="已有2个有效凭证：先吊销一个")
    def rotate_own(body):
        """轮换：为本部门签发新凭证（最多同时2个有效），切换后吊销旧凭证"""
        dept = _department()
        return _issue(dept["_id"], body.get("label"), dept["name"])

    @dept_bp.route("/department/credentials/<string:key_id>", methods=["DELETE"])
    @require("department")
    @dept_bp.response(200, CredentialOut)
    def revoke_own(key_id):
        """吊销本部门的一个凭证（立即失效）"""
        dept = _department()
        return _revoke(dept["_id"], key_id, dept["name"])

    @dept_bp.route("/department/deliveries", methods=["GET"])
    @require("department")
    @dept_bp.arguments(WebhookDeliveriesQuery, location="query", unknown=RAISE)
    @dept_bp.response(200, WebhookDeliveryOut(many=True))
    def deliveries(query):
        """本部门最近的 Webhook 投递记录（新的在前）：状态、尝试次数、最后一次的 HTTP 状态"""
        dept = _department()
        return service.webhooks.of_department(dept["_id"], limit=query["limit"])

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
            return _fail(422, exc.message, field=exc.field, location="query")
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

    def department_action(action: str, case_id: str, body: dict, **kwargs):
        principal = current_principal()
        key = request.headers.get("Idempotency-Key")
        scope = principal.department_id or ""
        if key is not None:
            key = key.strip()
            if not 1 <= len(key) <= MAX_KEY:
                return _fail(422, f"Idempotency-Key 长度须为1到{MAX_KEY}", field="Idempotency-Key",
                             location="headers")
            try:
                replay = service.idempotency.begin(scope, key, fingerprint(request.method, request.path, body))
            except KeyReused:
                return _fail(422, "该 Idempotency-Key 已用于另一个请求", code="idempotency_key_reused",
                             field="Idempotency-Key", location="headers")
            except InProgress:
                return _fail(409, "使用该 Idempotency-Key 的请求仍在处理中，请稍后重试", code="idempotency_in_progress")
            if replay is not None:
                return _respond(replay.status, replay.body, replayed=True)
        try:
            doc, dept = service.act(principal, case_id, action, idempotency_key=key, **kwargs)
            status, out = 200, ReferralCaseOut().dump(case_view(doc, dept=dept))
        except Hidden:
            status, out = 404, _body(404, "未找到该工单")
        except NotAllowed as exc:
            status, out = 403, _body(403, str(exc))
        except Conflict as exc:
            status, out = 409, _body(409, exc.message, code=exc.code)
        except BadField as exc:
            status, out = 422, _body(422, exc.message, field=exc.field)
        except Exception:
            if key:
                service.idempotency.abandon(scope, key)
            raise
        if key:
            service.idempotency.finish(scope, key, status, out)
        return _respond(status, out)

    def action_docs(view):
        view = dept_bp.doc(parameters=[IDEMPOTENCY_HEADER])(view)
        view = dept_bp.alt_response(409, description=CONFLICT)(view)
        return dept_bp.alt_response(404, description="本部门没有这件工单")(view)

    @dept_bp.route("/department/cases/<string:case_id>/accept", methods=["POST"])
    @require("department")
    @dept_bp.arguments(AcceptIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def accept(body, case_id):
        """签收"""
        return department_action("accept", case_id, body, note=body.get("note"))

    @dept_bp.route("/department/cases/<string:case_id>/progress", methods=["POST"])
    @require("department")
    @dept_bp.arguments(ProgressIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def progress(body, case_id):
        """填报办理进展（签收后）"""
        return department_action("progress", case_id, body, note=body["note"])

    @dept_bp.route("/department/cases/<string:case_id>/extension", methods=["POST"])
    @require("department")
    @dept_bp.arguments(ExtensionIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def extension(body, case_id):
        """申请延期：写明理由和延长的工作日数；镇(街道)批准后办结时限才会顺延"""
        return department_action("extension", case_id, body, working_days=body["working_days"], reason=body["reason"])

    @dept_bp.route("/department/cases/<string:case_id>/return", methods=["POST"])
    @require("department")
    @dept_bp.arguments(ReturnIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def return_case(body, case_id):
        """退单（牵头部门，交办后规定时限内）：不属本部门职责，写明理由并附依据链接；镇(街道)改派或裁定"""
        return department_action("return", case_id, body, reason=body["reason"], evidence=body["evidence"])

    @dept_bp.route("/department/cases/<string:case_id>/part", methods=["POST"])
    @require("department")
    @dept_bp.arguments(CoPartIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def submit_part(body, case_id):
        """提交配合意见（配合部门，签收后）"""
        return department_action("part", case_id, body, note=body["note"], attachments=body["attachments"])

    @dept_bp.route("/department/cases/<string:case_id>/sign-off", methods=["POST"])
    @require("department")
    @dept_bp.arguments(SignOffIn)
    @dept_bp.response(200, ReferralCaseOut)
    @action_docs
    def sign_off(body, case_id):
        """销号（牵头部门）：签收后、所有配合部门提交配合意见后，写明办理结果"""
        return department_action("sign_off", case_id, body, resolution=body["resolution"],
                                 attachments=body["attachments"])

    def _department() -> dict:
        try:
            return service.department_for(current_principal())
        except NotAllowed as exc:
            abort(403, message=str(exc))

    # ============================================================ the township's decisions
    town = Blueprint("township-referrals", __name__, url_prefix="/api/v1",
                     description="镇(街道)：上报市直部门的工单，审批延期、处理退单（改派或裁定）")

    @town.route("/townships/<string:code>/referrals", methods=["GET"])
    @require(*STAFF)
    @town.arguments(ReferralsQuery, location="query", unknown=RAISE)
    @town.response(200, ReferralRowOut(many=True))
    def township_referrals(query, code):
        """本镇(街道)上报市直部门的工单；status=returned 为待处理的退单，unmatched 为待指定牵头部门"""
        require_township(code)
        return service.township_referrals(code, query.get("status"), query["limit"], query["offset"])

    @town.route("/referrals/<string:case_id>", methods=["GET"])
    @require(*STAFF)
    @town.response(200, ReferralCaseOut)
    def read_referral(case_id):
        """详情：各部门进度、延期申请、退单理由与依据、时间线（电话脱敏）"""
        try:
            return case_view(service.staff_referral(current_principal(), case_id), dept=None)
        except Hidden:
            abort(404, message="未找到该工单")

    def staff_action(fn, *args, **kwargs):
        try:
            doc = fn(current_principal(), *args, **kwargs)
        except Hidden:
            return _fail(404, "未找到")
        except Conflict as exc:
            return _fail(409, exc.message, code=exc.code)
        except BadField as exc:
            return _fail(422, exc.message, field=exc.field)
        return case_view(doc, dept=None)

    @town.route("/referrals/<string:case_id>/extensions/<string:extension_id>/approve", methods=["POST"])
    @require(*STAFF)
    @town.arguments(ApproveIn)
    @town.response(200, ReferralCaseOut)
    @town.alt_response(409, description=CONFLICT)
    def approve(body, case_id, extension_id):
        """批准延期：办结时限顺延（默认按申请的工作日数）"""
        return staff_action(service.decide_extension, case_id, extension_id, True,
                            working_days=body.get("working_days"), note=body.get("note"))

    @town.route("/referrals/<string:case_id>/extensions/<string:extension_id>/refuse", methods=["POST"])
    @require(*STAFF)
    @town.arguments(RefuseIn)
    @town.response(200, ReferralCaseOut)
    @town.alt_response(409, description=CONFLICT)
    def refuse(body, case_id, extension_id):
        """不批准延期：时限不变"""
        return staff_action(service.decide_extension, case_id, extension_id, False, note=body["note"])

    @town.route("/referrals/<string:case_id>/lead", methods=["POST"])
    @require(*STAFF)
    @town.arguments(LeadIn)
    @town.response(200, ReferralCaseOut)
    @town.alt_response(409, description=CONFLICT)
    def choose_lead(body, case_id):
        """改派牵头部门：同意退单并交给另一个部门，或为未匹配的工单指定牵头部门"""
        return staff_action(service.choose_lead, case_id, body["department_id"], body.get("note"))

    @town.route("/referrals/<string:case_id>/ruling", methods=["POST"])
    @require(*STAFF)
    @town.arguments(RulingIn)
    @town.response(200, ReferralCaseOut)
    @town.alt_response(409, description=CONFLICT)
    def ruling(body, case_id):
        """裁定退单不成立：原部门须办理（重新计时，不得再次退单）"""
        return staff_action(service.rule, case_id, body["ruling"])

    return [admin, dept_bp, town]


def _check_city(city: str) -> None:
    if not (len(city) == 6 and city.isdigit()):
        abort(404, message="未找到")
