"""dispatch's HTTP edge: townships, the roster, and reading cases. Decode, validate, call, map."""
from __future__ import annotations

from flask import jsonify
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from shared.auth import current_principal, require, require_township
from shared.domain.spreadsheet import StalePreview
from shared.events import TOWNSHIP_CODE
from shared.import_schemas import ImportNoticeOut, ImportQuery, PreviewOut
from shared.web import spreadsheet_body, uploaded_spreadsheet

from .contacts import ContactsError
from .roster import RosterError

MAX_ROSTER_BYTES = 20 * 1024 * 1024
# A name is shown on pages and written into spreadsheets: no control characters.
PLAIN_TEXT = validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="不能包含控制字符")


def _township_code(code: str) -> None:
    """A path that cannot name a township names nothing (404, as for another township's)."""
    try:
        TOWNSHIP_CODE(code)
    except ValidationError:
        abort(404, message="未找到")


class TownshipIn(Schema):
    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=TOWNSHIP_CODE, metadata={"example": "430382100"})
    name = fields.String(required=True, validate=[validate.Length(min=1, max=40), PLAIN_TEXT], metadata={"example": "清溪镇"})
    city = fields.String(validate=validate.Regexp(r"^\d{6}$"), metadata={"example": "430382"})


class TownshipOut(Schema):
    code = fields.String(attribute="_id")
    name = fields.String()
    city = fields.String()


class RosterQuery(ImportQuery):
    """The roster's (and the contacts file's) import query: shared.import_schemas.ImportQuery."""


class ImportOut(Schema):
    import_id = fields.String(allow_none=True, metadata={"description": "未作任何更改时为 null"})
    township = fields.String()
    changed = fields.Boolean(metadata={"description": "false：与当前台账一致，未写入任何数据"})
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    unreachable = fields.List(fields.Dict(), metadata={"description": "无人可联系的岗位（见 GET …/reachability）"})
    notices = fields.List(fields.Nested(ImportNoticeOut), metadata={
        "description": "读取时的提示：表头位置、未导入的合计/备注行、隐藏的行和列"})


class RosterPreviewOut(PreviewOut):
    township = fields.String()
    summary = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "posts_added, posts_removed, leads_changed, vacancies, households_added, households_removed, "
                       "households_moved, households_changed, unreachable_posts 的数量"})
    changes = fields.Dict(keys=fields.String(), values=fields.List(fields.Dict()), metadata={
        "description": "同上各项的明细（每项最多列出200条；电话脱敏）"})


class UnitOut(Schema):
    id = fields.String(attribute="_id")
    level = fields.String()
    name = fields.String()
    parent_id = fields.String(allow_none=True)
    lead_name = fields.Function(lambda u: (u.get("lead") or {}).get("name"))
    lead_phone = fields.Function(lambda u: _masked((u.get("lead") or {}).get("phone")))


def _masked(phone):
    from shared.domain.phones import mask as mask_phone

    return mask_phone(phone)


def build_blueprint(org, cases_repo, reachability=None) -> Blueprint:
    bp = Blueprint("dispatch", __name__, url_prefix="/api/v1", description="派单：组织架构、花名册导入与工单")

    @bp.route("/admin/townships", methods=["POST"])
    @require("operator")
    @bp.arguments(TownshipIn)
    @bp.response(201, TownshipOut)
    def create_township(body):
        """登记一个镇(街道)（运维）"""
        return org.ensure_township(body["code"], body["name"], body.get("city"))

    @bp.route("/townships/<string:code>/roster", methods=["POST"])
    @require("operator", "staff")
    @bp.arguments(RosterQuery, location="query")
    @bp.response(201, ImportOut)
    @bp.alt_response(200, schema=RosterPreviewOut, description="dry_run=true：预览将发生的变化，未写入任何数据")
    @bp.alt_response(409, description="带了 base，但预览之后台账已被修改：请重新预览")
    @bp.alt_response(422, description="花名册有误：整份拒收，逐行列出错误")
    @bp.doc(requestBody=spreadsheet_body("花名册"))
    def import_roster(query, code):
        """导入花名册（XLSX 或 CSV，UTF-8 或 GBK）。上传 multipart 字段 file，或以原始正文提交并给出 filename。
        先加 dry_run=true 预览（不写入），确认后不带该参数再提交同一文件；重复导入同一文件不会产生任何更改。"""
        _township_code(code)
        principal = require_township(code)
        data, filename = uploaded_spreadsheet(query, "roster.xlsx", MAX_ROSTER_BYTES)
        if not data:
            abort(400, message="缺少花名册文件", errors={"file": ["缺少花名册文件"]})
        if len(data) > MAX_ROSTER_BYTES:
            abort(413, message="花名册文件过大")
        try:
            if query["dry_run"]:
                return jsonify(RosterPreviewOut().dump(org.preview_roster(code, data, filename)))
            answer = org.import_roster(code, data, filename, actor=principal.role, base=query.get("base"))
        except (RosterError, ContactsError) as exc:
            abort(422, message="花名册有误，未导入任何数据", errors={"file": exc.errors})
        except StalePreview as exc:
            abort(409, message=str(exc))
        return {**answer, "unreachable": reachability(code) if reachability else []}

    @bp.route("/townships/<string:code>/org", methods=["GET"])
    @bp.response(200, UnitOut(many=True))
    @require("operator", "staff")
    def org_tree(code):
        """组织架构：村、片、组、邻及其负责人（电话脱敏）"""
        require_township(code)
        return org.tree(code)

    return bp
