"""HTTP for township staff on the resident's loop: the knowledge base of common questions, follow-up
calls (回访), and the township's settings (follow-up delay, duplicate radius and window, rating link)."""
from __future__ import annotations

from flask import jsonify
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields, validate

from shared.auth import require, require_township
from shared.domain.spreadsheet import StalePreview
from shared.import_schemas import ImportQuery, PreviewOut
from shared.web import spreadsheet_body, uploaded_spreadsheet

from .knowledge import KbError, KnowledgeBase
from .loop import OUTCOMES, LoopError, ResidentLoop
from .residents import SettingsIn, SettingsOut, TownshipSettings

STAFF = ("operator", "staff")
MAX_KB_BYTES = 5 * 1024 * 1024
CODE = validate.Regexp(r"^[A-Za-z0-9_-]{1,32}$", error="编号只能包含字母、数字、-和_，最长32位")


class KbEntryIn(Schema):
    class Meta:
        unknown = RAISE

    code = fields.String(validate=CODE, metadata={"example": "yl-rz", "description": "编号（不填则按问题生成）"})
    question = fields.String(required=True, validate=validate.Length(min=2, max=200),
                             metadata={"example": "领养老金每年的资格认证怎么做？"})
    answer = fields.String(required=True, validate=validate.Length(min=2, max=2000))
    keywords = fields.List(fields.String(validate=validate.Length(min=1, max=30)), validate=validate.Length(max=30),
                           metadata={"example": ["养老认证", "刷脸认证"]})
    category = fields.String(validate=validate.Length(max=20), allow_none=True, metadata={"example": "养老"})
    active = fields.Boolean(metadata={"description": "停用的条目不参与即时答复"})


class KbEntryOut(Schema):
    code = fields.String()
    question = fields.String()
    answer = fields.String()
    keywords = fields.List(fields.String())
    category = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = fields.String()
    updated_at = fields.String()
    updated_by = fields.String(allow_none=True)


class KbImportQuery(ImportQuery):
    """The knowledge base's import query: shared.import_schemas.ImportQuery, and ``replace``."""
    replace = fields.Boolean(load_default=False, metadata={"description": "true：删除文件中没有的条目"})


class KbPreviewOut(PreviewOut):
    township = fields.String()
    summary = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": "added, changed, removed, unchanged 的条数"})


class KbImportOut(Schema):
    township = fields.String()
    total = fields.Integer()
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    removed = fields.Integer()


class KbMatchIn(Schema):
    class Meta:
        unknown = RAISE

    text = fields.String(required=True, validate=validate.Length(min=1, max=2000), metadata={"example": "养老认证怎么弄"})


class KbMatchOut(Schema):
    answered = fields.Boolean(metadata={"description": "是否会即时答复"})
    reason = fields.String(metadata={"description": "confident / below_threshold / ambiguous / problem / no_match"})
    confidence = fields.Float()
    margin = fields.Float()
    entry = fields.Nested(KbEntryOut, allow_none=True, metadata={"description": "最接近的条目"})


class FollowupQuery(Schema):
    class Meta:
        unknown = RAISE

    status = fields.String(load_default="open", validate=validate.OneOf(["open", "done", "all"]))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    skip = fields.Integer(load_default=0, validate=validate.Range(0, 100000))


class FollowupIn(Schema):
    class Meta:
        unknown = RAISE

    outcome = fields.String(required=True, validate=validate.OneOf(list(OUTCOMES)),
                            metadata={"description": "reached 已联系上 / satisfied 满意 / unsatisfied 不满意 / unreachable 联系不上"})
    note = fields.String(validate=validate.Length(max=500), metadata={"example": "电话回访，路灯已亮，群众满意"})


class ResolvedByOut(Schema):
    level = fields.String(allow_none=True)
    unit_name = fields.String(allow_none=True)
    lead_name = fields.String(allow_none=True)


class FollowupOut(Schema):
    id = fields.String(attribute="_id")
    township = fields.String()
    report_id = fields.String()
    tracking_no = fields.String()
    case_id = fields.String(allow_none=True)
    category = fields.String()
    summary = fields.String()
    resolution = fields.Integer()
    resolved_by = fields.Nested(ResolvedByOut, allow_none=True)
    status = fields.String()
    reporter_name = fields.String(allow_none=True)
    reporter_phone = fields.String(allow_none=True, metadata={"description": "回访电话（完整号码，仅回访任务显示）"})
    rated = fields.String(allow_none=True, metadata={"description": "群众已自行评价时的评价"})
    created_at = fields.String()
    due_at = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    completed_at = fields.String(allow_none=True)
    completed_by = fields.String(allow_none=True)


def _loop_call(fn, *args):
    try:
        return fn(*args)
    except LoopError as exc:
        abort(exc.status, message=exc.message)


def build_admin_blueprint(kb: KnowledgeBase, loop: ResidentLoop, settings: TownshipSettings) -> Blueprint:
    bp = Blueprint("resident_admin", __name__, url_prefix="/api/v1",
                   description="常见问题库、回访任务与群众评单设置（镇街工作人员）")
    # Registered in this order so the OpenAPI document lists the operations as it always has.
    _kb_entry_routes(bp, kb)
    _kb_file_routes(bp, kb)
    _followup_routes(bp, loop)
    _settings_routes(bp, settings)
    return bp


def _actor(principal) -> str:
    return principal.name or principal.role


def _kb_entry_routes(bp: Blueprint, kb: KnowledgeBase) -> None:
    """The knowledge base, one entry at a time."""
    @bp.route("/townships/<string:code>/kb", methods=["GET"])
    @require(*STAFF)
    @bp.response(200, KbEntryOut(many=True))
    def kb_list(code):
        """本镇常见问题库"""
        require_township(code)
        return kb.list(code)

    @bp.route("/townships/<string:code>/kb", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(KbEntryIn)
    @bp.response(201, KbEntryOut)
    @bp.alt_response(409, description="编号已存在（请用 PUT 修改）")
    def kb_create(body, code):
        """新增一条常见问题（编号已存在时 409）"""
        principal = require_township(code)
        if body.get("code") and kb.get(code, body["code"]):
            abort(409, message=f"编号 {body['code']} 已存在，请用 PUT 修改")
        entry, _ = kb.put(code, body, _actor(principal))
        return entry

    @bp.route("/townships/<string:code>/kb/<string:entry>", methods=["GET"])
    @require(*STAFF)
    @bp.response(200, KbEntryOut)
    def kb_read(code, entry):
        """一条常见问题"""
        require_township(code)
        found = kb.get(code, entry)
        if found is None:
            abort(404, message="未找到该条目")
        return found

    @bp.route("/townships/<string:code>/kb/<string:entry>", methods=["PUT"])
    @require(*STAFF)
    @bp.arguments(KbEntryIn)
    @bp.response(200, KbEntryOut)
    def kb_replace(body, code, entry):
        """修改（整条替换）一条常见问题"""
        principal = require_township(code)
        if kb.get(code, entry) is None:
            abort(404, message="未找到该条目")
        if body.get("code") not in (None, entry):
            abort(422, message="编号不能修改", errors={"json": {"code": ["编号不能修改"]}})
        stored, _ = kb.put(code, body, _actor(principal), code=entry)
        return stored

    @bp.route("/townships/<string:code>/kb/<string:entry>", methods=["DELETE"])
    @require(*STAFF)
    @bp.response(204)
    def kb_delete(code, entry):
        """删除一条常见问题"""
        require_township(code)
        if not kb.delete(code, entry):
            abort(404, message="未找到该条目")


def _kb_file_routes(bp: Blueprint, kb: KnowledgeBase) -> None:
    """The knowledge base as a whole: importing a spreadsheet, trying a question against it."""
    @bp.route("/townships/<string:code>/kb/import", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(KbImportQuery, location="query")
    @bp.response(201, KbImportOut)
    @bp.alt_response(200, schema=KbPreviewOut, description="dry_run=true：预览新增、修改、删除的条目，未写入")
    @bp.alt_response(409, description="带了 base，但预览之后知识库已被修改：请重新预览")
    @bp.alt_response(422, description="文件有误：整份拒收，逐行列出错误")
    @bp.doc(requestBody=spreadsheet_body("常见问题表"))
    def kb_import(query, code):
        """导入常见问题表（XLSX 或 CSV，UTF-8 或 GBK），表头：问题、答案、关键词、类别（可选：编号）。
        上传 multipart 字段 file，或以原始正文提交并给出 filename。重复导入按编号更新，不会重复。
        先加 dry_run=true 预览，确认后再提交。"""
        principal = require_township(code)
        data, filename = uploaded_spreadsheet(query, "kb.xlsx", MAX_KB_BYTES, "kb.csv")
        if len(data) > MAX_KB_BYTES:
            abort(413, message="文件过大")
        try:
            if query["dry_run"]:
                return jsonify(KbPreviewOut().dump(kb.preview_file(code, data, filename, replace=query["replace"])))
            return kb.import_file(code, data, filename, _actor(principal), replace=query["replace"], base=query.get("base"))
        except KbError as exc:
            abort(422, message="常见问题表有误，未导入任何数据", errors={"file": exc.errors})
        except StalePreview as exc:
            abort(409, message=str(exc))

    @bp.route("/townships/<string:code>/kb/match", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(KbMatchIn)
    @bp.response(200, KbMatchOut)
    def kb_match(body, code):
        """试答：这句话会不会被即时答复、答哪一条、可信度多少（不生成诉求）"""
        require_township(code)
        match, entry = kb.match(code, body["text"])
        if match is None:
            return {"answered": False, "reason": "no_knowledge_base", "confidence": 0.0, "margin": 0.0, "entry": None}
        closest = entry or (kb.entries.get(match.best.entry_id) if match.best else None)
        return {"answered": match.confident, "reason": match.reason, "confidence": round(match.confidence, 3),
                "margin": round(match.margin, 3), "entry": closest}


def _followup_routes(bp: Blueprint, loop: ResidentLoop) -> None:
    """Follow-up calls to residents who did not rate a resolved report."""
    @bp.route("/townships/<string:code>/followups", methods=["GET"])
    @require(*STAFF)
    @bp.arguments(FollowupQuery, location="query")
    @bp.response(200, FollowupOut(many=True))
    def followups(query, code):
        """回访任务：办结后逾期未评价的诉求（status=open 待回访 / done 已回访 / all）"""
        require_township(code)
        return loop.list_followups(code, query["status"], query["limit"], query["skip"])

    @bp.route("/followups/<string:followup_id>/complete", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(FollowupIn)
    @bp.response(200, FollowupOut)
    @bp.alt_response(409, description="该回访已完成")
    def complete(body, followup_id):
        """登记回访结果。satisfied / unsatisfied 同时记为群众对本次办结的评价（不满意将退回重办）。"""
        from shared.auth import current_principal

        return _loop_call(loop.complete_followup, current_principal(), followup_id, body["outcome"], body.get("note"))


def _settings_routes(bp: Blueprint, settings: TownshipSettings) -> None:
    """The township's settings of the resident's loop."""
    @bp.route("/townships/<string:code>/resident-settings", methods=["GET"])
    @require(*STAFF)
    @bp.response(200, SettingsOut)
    def get_settings(code):
        """群众评单设置：即时答复开关、回访天数、疑似重复的距离与时间窗、评价链接站点"""
        require_township(code)
        return settings.get(code)

    @bp.route("/townships/<string:code>/resident-settings", methods=["PUT"])
    @require(*STAFF)
    @bp.arguments(SettingsIn)
    @bp.response(200, SettingsOut)
    def put_settings(body, code):
        """修改群众评单设置（只改给出的项）"""
        principal = require_township(code)
        return settings.put(code, body, _actor(principal))
