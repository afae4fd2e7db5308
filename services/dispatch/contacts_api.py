"""dispatch's HTTP edge for the posts' contacts: village committees (村两委) and township staff
(镇干部), and the posts nobody can be reached at. Decode, validate, call, map."""
from __future__ import annotations

from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields, validate

from shared.auth import require, require_township
from shared.domain.phones import mask
from shared.web import spreadsheet_body, uploaded_spreadsheet

from .api import MAX_ROSTER_BYTES, PLAIN_TEXT, RosterQuery, _township_code
from .contact_book import ContactBook, ContactConflict
from .contacts import HEADERS, ContactsError

_FIELD_OF = {text: name for name, text in HEADERS.items()}


class ContactIn(Schema):
    class Meta:
        unknown = RAISE

    village = fields.String(allow_none=True, load_default=None, validate=[validate.Length(max=40), PLAIN_TEXT],
                            metadata={"description": "村(社区)名称，与花名册一致；镇干部留空", "example": "韶山村"})
    name = fields.String(required=True, validate=[validate.Length(min=1, max=40), PLAIN_TEXT], metadata={"example": "毛建国"})
    duty = fields.String(allow_none=True, load_default=None, validate=[validate.Length(max=40), PLAIN_TEXT],
                         metadata={"description": "职务：书记、主任、值班、包村干部、分管领导……", "example": "值班"})
    phone = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=40),
                          metadata={"example": "13873100101"})
    wecom_id = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=64),
                             metadata={"example": "maojianguo"})
    precedence = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1, max=999),
                                metadata={"description": "联系顺序，1最先；省略则排在最后"})


class ContactOut(Schema):
    id = fields.String(attribute="_id")
    level = fields.String(metadata={"description": "village（村两委）或 township（镇干部）"})
    unit_id = fields.String()
    unit_name = fields.String()
    name = fields.String()
    duty = fields.String()
    phone = fields.Function(lambda c: mask(c.get("phone")), metadata={"description": "脱敏"})
    wecom_id = fields.String(allow_none=True)
    precedence = fields.Integer()


class UnreachableOut(Schema):
    unit_id = fields.String()
    level = fields.String()
    unit_name = fields.String()
    title = fields.String()
    reason = fields.String()
    channels = fields.List(fields.String())


class ContactsImportOut(Schema):
    township = fields.String()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    unreachable = fields.List(fields.Nested(UnreachableOut))


class ReachabilityOut(Schema):
    township = fields.String()
    unreachable = fields.List(fields.Nested(UnreachableOut))


def _json_errors(exc: ContactsError) -> dict:
    out: dict = {}
    for e in exc.errors:
        out.setdefault(_FIELD_OF.get(e["column"], "village"), []).append(e["message"])
    return out


def build_contacts_blueprint(book: ContactBook) -> Blueprint:
    bp = Blueprint("contacts", __name__, url_prefix="/api/v1", description="村两委和镇干部联系人；无人可联系的岗位")
    _reading_routes(bp, book)
    _writing_routes(bp, book)
    return bp


def _reading_routes(bp: Blueprint, book: ContactBook) -> None:
    @bp.route("/townships/<string:code>/contacts", methods=["GET"])
    @require("operator", "staff")
    @bp.response(200, ContactOut(many=True))
    def list_contacts(code):
        """村两委和镇干部联系人（电话脱敏）"""
        _township_code(code)
        require_township(code)
        return book.list(code)

    @bp.route("/townships/<string:code>/reachability", methods=["GET"])
    @require("operator", "staff")
    @bp.response(200, ReachabilityOut)
    def reachability(code):
        """无人可联系的岗位：能承办工单、却没有一位联系人能被已启用的渠道联系到的岗位"""
        _township_code(code)
        require_township(code)
        return {"township": code, "unreachable": book.reachability(code)}


def _writing_routes(bp: Blueprint, book: ContactBook) -> None:
    @bp.route("/townships/<string:code>/contacts", methods=["POST"])
    @require("operator", "staff")
    @bp.arguments(ContactIn)
    @bp.response(201, ContactOut)
    @bp.alt_response(409, description="该岗位已有同名联系人")
    def add_contact(body, code):
        """新增一位联系人（村两委或镇干部）"""
        _township_code(code)
        principal = require_township(code)
        try:
            return book.add(code, body, actor=principal.role)
        except ContactsError as exc:
            abort(422, message="联系人有误，未保存", errors={"json": _json_errors(exc)})
        except ContactConflict:
            abort(409, message="该村(社区)或镇干部中已有同名联系人，请修改原联系人", errors={"json": {"name": ["已存在"]}})

    @bp.route("/townships/<string:code>/contacts/<string:contact_id>", methods=["PUT"])
    @require("operator", "staff")
    @bp.arguments(ContactIn)
    @bp.response(200, ContactOut)
    @bp.alt_response(409, description="该岗位已有同名联系人")
    def update_contact(body, code, contact_id):
        """修改一位联系人（整条替换）"""
        _township_code(code)
        principal = require_township(code)
        try:
            return book.update(code, contact_id, body, actor=principal.role)
        except LookupError:
            abort(404, message="未找到")
        except ContactsError as exc:
            abort(422, message="联系人有误，未保存", errors={"json": _json_errors(exc)})
        except ContactConflict:
            abort(409, message="该村(社区)或镇干部中已有同名联系人", errors={"json": {"name": ["已存在"]}})

    @bp.route("/townships/<string:code>/contacts/<string:contact_id>", methods=["DELETE"])
    @require("operator", "staff")
    @bp.response(204)
    def delete_contact(code, contact_id):
        """删除一位联系人"""
        _township_code(code)
        principal = require_township(code)
        try:
            book.delete(code, contact_id, actor=principal.role)
        except LookupError:
            abort(404, message="未找到")

    @bp.route("/townships/<string:code>/contacts-import", methods=["POST"])
    @require("operator", "staff")
    @bp.arguments(RosterQuery, location="query")
    @bp.response(201, ContactsImportOut)
    @bp.alt_response(422, description="联系人表有误：整份拒收，逐行列出错误")
    @bp.doc(requestBody=spreadsheet_body("联系人表"))
    def import_contacts(query, code):
        """导入联系人表（XLSX 或 CSV），整份替换本镇的村两委和镇干部联系人。上传 multipart 字段 file，或以原始正文提交并给出 filename。"""
        _township_code(code)
        principal = require_township(code)
        data, filename = uploaded_spreadsheet(query, "contacts.xlsx", MAX_ROSTER_BYTES)
        if not data:
            abort(400, message="缺少联系人文件", errors={"file": ["缺少联系人文件"]})
        if len(data) > MAX_ROSTER_BYTES:
            abort(413, message="联系人文件过大")
        try:
            return book.import_file(code, data, filename, actor=principal.role)
        except ContactsError as exc:
            abort(422, message="联系人表有误，未导入任何数据", errors={"file": exc.errors})
