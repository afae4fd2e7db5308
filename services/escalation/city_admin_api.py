"""The city's administration of escalation (operator or city staff): the city's settings, its
departments, their webhooks and credentials, and the responsibility matrix. Township staff of the
city may read the departments and the matrix (to choose a lead); staff of other cities get 404."""
from __future__ import annotations

from flask_smorest import Blueprint, abort
from marshmallow import RAISE

from shared.auth import require
from shared.domain.spreadsheet import StalePreview
from shared.web import spreadsheet_body, uploaded_spreadsheet

from .api_support import (MAX_MATRIX_BYTES, STAFF, check_city, city_admin, city_reader, department_or_404,
                          error_body, fail, issue_credential_for, respond, revoke_credential_of, with_effective)
from .directory import DirectoryError
from .matrix import MatrixError
from .schemas import (CityIn, CityOut, CredentialIn, CredentialIssued, CredentialOut, DepartmentIn, DepartmentOut,
                      DepartmentPatch, MatrixImportQuery, MatrixOut, MatrixPreviewOut, MatrixRowIn, MatrixRowQuery, WebhookIn,
                      WebhookOut)
from .service import BadField, EscalationService


def build_city_admin_blueprint(service: EscalationService) -> Blueprint:
    admin = Blueprint("escalation-admin", __name__, url_prefix="/api/v1",
                      description="市直部门、凭证、Webhook 与责任清单（运维或市级工作人员）")
    # Registered in this order so the OpenAPI document lists the operations as it always has.
    _city_routes(admin, service)
    _department_routes(admin, service)
    _webhook_routes(admin, service)
    _credential_routes(admin, service)
    _matrix_routes(admin, service)
    return admin


def _city_routes(admin: Blueprint, service: EscalationService) -> None:
    """A city's own settings."""
    directory = service.directory

    @admin.route("/cities/<string:city>", methods=["PUT"])
    @require(*STAFF)
    @admin.arguments(CityIn)
    @admin.response(200, CityOut)
    def put_city(body, city):
        """登记或修改一个市：名称、督办联系人、本市部门默认时限"""
        check_city(city)
        principal = city_admin(city)
        return directory.put_city(city, body, actor=principal.name or principal.role)

    @admin.route("/cities/<string:city>", methods=["GET"])
    @require(*STAFF)
    @admin.response(200, CityOut)
    def get_city(city):
        """读取市的设置"""
        check_city(city)
        city_reader(city)
        doc = directory.city(city)
        if doc is None:
            abort(404, message="该市尚未登记")
        return doc


def _department_routes(admin: Blueprint, service: EscalationService) -> None:
    """Registering and changing the city's departments."""
    directory = service.directory

    @admin.route("/cities/<string:city>/departments", methods=["POST"])
    @require(*STAFF)
    @admin.arguments(DepartmentIn)
    @admin.response(201, DepartmentOut)
    @admin.alt_response(409, description="编号或名称已被使用")
    def create_department(body, city):
        """登记一个市直部门"""
        check_city(city)
        principal = city_admin(city)
        try:
            created = directory.create_department(city, body, actor=principal.name or principal.role)
            return with_effective(service, created)
        except DirectoryError as exc:
            return fail(409, exc.message, code=exc.code, field=exc.field)

    @admin.route("/cities/<string:city>/departments", methods=["GET"])
    @require(*STAFF)
    @admin.response(200, DepartmentOut(many=True))
    def list_departments(city):
        """本市的市直部门（镇街工作人员可读，用于改派时选择部门）"""
        check_city(city)
        city_reader(city)
        return [with_effective(service, d) for d in directory.of_city(city)]

    @admin.route("/departments/<string:department_id>", methods=["GET"])
    @require(*STAFF)
    @admin.response(200, DepartmentOut)
    def get_department(department_id):
        """读取一个部门"""
        dept = department_or_404(service, department_id)
        city_reader(dept["city"])
        return with_effective(service, dept)

    @admin.route("/departments/<string:department_id>", methods=["PATCH"])
    @require(*STAFF)
    @admin.arguments(DepartmentPatch)
    @admin.response(200, DepartmentOut)
    @admin.alt_response(409, description="名称已被本市另一个部门使用")
    def patch_department(body, department_id):
        """修改部门：名称、联系人、是否可见完整电话、时限、停用"""
        dept = department_or_404(service, department_id)
        principal = city_admin(dept["city"])
        try:
            patched = directory.patch_department(department_id, body, actor=principal.name or principal.role)
            return with_effective(service, patched)
        except DirectoryError as exc:
            return fail(409, exc.message, code=exc.code, field=exc.field)


def _webhook_routes(admin: Blueprint, service: EscalationService) -> None:
    """A department's webhook."""
    directory = service.directory

    @admin.route("/departments/<string:department_id>/webhook", methods=["PUT"])
    @require(*STAFF)
    @admin.arguments(WebhookIn)
    @admin.response(200, WebhookOut)
    def put_webhook(body, department_id):
        """设置部门的 Webhook（Standard Webhooks 签名）；新建或轮换时返回一次签名密钥"""
        dept = department_or_404(service, department_id)
        principal = city_admin(dept["city"])
        doc, secret = directory.set_webhook(department_id, body["url"], body["enabled"], body["rotate_secret"],
                                            actor=principal.name or principal.role)
        return {**doc["webhook"], "secret": secret}

    @admin.route("/departments/<string:department_id>/webhook", methods=["DELETE"])
    @require(*STAFF)
    @admin.response(204)
    def delete_webhook(department_id):
        """删除部门的 Webhook（改为轮询）"""
        dept = department_or_404(service, department_id)
        principal = city_admin(dept["city"])
        directory.clear_webhook(department_id, actor=principal.name or principal.role)


def _credential_routes(admin: Blueprint, service: EscalationService) -> None:
    """A department's API credentials, managed by the city."""
    directory = service.directory

    @admin.route("/departments/<string:department_id>/credentials", methods=["POST"])
    @require(*STAFF)
    @admin.arguments(CredentialIn)
    @admin.response(201, CredentialIssued)
    @admin.alt_response(409, description="已有2个有效凭证：先吊销一个")
    def issue_credential(body, department_id):
        """为部门签发接口凭证（key_id + secret，仅显示一次；最多同时2个有效，便于轮换）"""
        dept = department_or_404(service, department_id)
        principal = city_admin(dept["city"])
        return issue_credential_for(service, department_id, body.get("label"), principal.name or principal.role)

    @admin.route("/departments/<string:department_id>/credentials", methods=["GET"])
    @require(*STAFF)
    @admin.response(200, CredentialOut(many=True))
    def list_credentials(department_id):
        """部门的凭证（只有编号和时间，不含密钥）"""
        dept = department_or_404(service, department_id)
        city_admin(dept["city"])
        return directory.credentials_of(department_id)

    @admin.route("/departments/<string:department_id>/credentials/<string:key_id>", methods=["DELETE"])
    @require(*STAFF)
    @admin.response(200, CredentialOut)
    def revoke_credential(department_id, key_id):
        """吊销凭证：立即失效"""
        dept = department_or_404(service, department_id)
        principal = city_admin(dept["city"])
        return revoke_credential_of(service, department_id, key_id, principal.name or principal.role)


def _matrix_routes(admin: Blueprint, service: EscalationService) -> None:
    """The responsibility matrix: rows, and importing the whole of it."""

    @admin.route("/cities/<string:city>/matrix", methods=["GET"])
    @require(*STAFF)
    @admin.response(200, MatrixOut)
    def get_matrix(city):
        """责任清单：每个类别的牵头部门和配合部门；missing 列出缺少牵头部门的类别"""
        check_city(city)
        city_reader(city)
        return service.matrix_view(city)

    @admin.route("/cities/<string:city>/matrix/rows", methods=["PUT"])
    @require(*STAFF)
    @admin.arguments(MatrixRowIn)
    @admin.response(200, MatrixOut)
    def put_matrix_row(body, city):
        """新增或替换一行（类别 + 可选的镇街；镇街专属行优先于全市通用行）"""
        check_city(city)
        principal = city_admin(city)
        try:
            service.put_matrix_row(city, body, actor=principal.name or principal.role)
        except BadField as exc:
            return fail(422, exc.message, field=exc.field)
        return service.matrix_view(city)

    @admin.route("/cities/<string:city>/matrix/rows", methods=["DELETE"])
    @require(*STAFF)
    @admin.arguments(MatrixRowQuery, location="query", unknown=RAISE)
    @admin.response(200, MatrixOut)
    def delete_matrix_row(query, city):
        """删除一行"""
        check_city(city)
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
    @admin.alt_response(200, schema=MatrixPreviewOut, description="dry_run=true：预览新增、修改、删除的行，未写入")
    @admin.alt_response(409, description="带了 base，但预览之后清单已被修改：请重新预览")
    @admin.alt_response(422, description="清单有误：整份拒收，逐行列出错误（行号、单元格与表格一致）")
    @admin.doc(requestBody=spreadsheet_body("责任清单"))
    def import_matrix(query, city):
        """导入责任清单（XLSX 或 CSV，UTF-8/GBK），整份替换本市清单。列：类别、镇(街道)代码、牵头部门、配合部门、备注。
        上传 multipart 字段 file，或以原始正文提交并给出 filename。先加 dry_run=true 预览，确认后再提交。"""
        check_city(city)
        principal = city_admin(city)
        data, filename = uploaded_spreadsheet(query, "matrix.xlsx", MAX_MATRIX_BYTES, "matrix.csv")
        if not data:
            return fail(400, "缺少责任清单文件", field="file", location="files")
        if len(data) > MAX_MATRIX_BYTES:
            return fail(413, "责任清单文件过大")
        try:
            if query["dry_run"]:
                return respond(200, MatrixPreviewOut().dump(service.preview_matrix(city, data, filename)))
            service.import_matrix(city, data, filename, actor=principal.name or principal.role, base=query.get("base"))
        except StalePreview as exc:
            return fail(409, str(exc))
        except MatrixError as exc:
            body = error_body(422, "责任清单有误，未导入任何数据")
            body["errors"] = {"file": exc.errors}
            return respond(422, body)
        return service.matrix_view(city)
