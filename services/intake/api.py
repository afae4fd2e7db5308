"""intake's HTTP edge: submit a report, read the resident's view."""
from __future__ import annotations

from flask import jsonify, request
from flask_smorest import Blueprint, abort

from shared.auth import require, require_township

from .reports import STATUS_NAMES
from .resident_auth import caller
from .residents import ResidentTokens
from .schemas import ReportCreated, ReportIn, ReportView, created_body

def _view(report: dict) -> dict:
    return {**report, "status_text": STATUS_NAMES.get(report["status"], report["status"])}


def build_blueprint(service, tokens: ResidentTokens | None = None) -> Blueprint:
    tokens = tokens or ResidentTokens(None)
    bp = Blueprint("intake", __name__, url_prefix="/api/v1", description="受理：群众点单与办理进度查询")

    @bp.route("/reports", methods=["POST"])
    @require("operator", "client", "staff", "lead")
    @bp.arguments(ReportIn())  # an instance: webargs would build a schema per request from a class
    @bp.response(201, ReportCreated)
    @bp.alt_response(404, description="township 不在凭证范围内（与不存在的镇相同）")
    def submit(body):
        """提交诉求（群众点单）。住户编号、地址或登记电话任一项即可定位到邻。

        可带 Idempotency-Key 头：网络中断后用同一个键重发，返回第一次创建的诉求，不会重复立案。

        常见问题（医保、养老认证、补贴、开证明……）与本镇知识库匹配可信时即时答复（status=answered，
        不派单）；附近同类未办结的诉求列在 possible_duplicates 中，可选择关注。"""
        principal = require_township(body["township"])
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= 100):
            abort(422, message="Idempotency-Key 须为1到100个字符", errors={"headers": {"Idempotency-Key": ["长度须为1到100"]}})
        scoped = f"{principal.role}:{principal.name or ''}:{','.join(principal.townships)}:{key}" if key else None
        report = service.submit(body, idempotency_key=scoped)
        # ReportCreated's fields, written without a marshmallow dump (schemas.created_body)
        answer = jsonify(created_body(report, STATUS_NAMES.get(report["status"], report["status"]), tokens.issue(report)))
        answer.status_code = 201
        return answer

    @bp.route("/reports/<string:ref>", methods=["GET"])
    @bp.response(200, ReportView)
    def read(ref):
        """群众查看办理进度：状态、当前经办层级与人员（电话脱敏）、时间线、评价。ref 为编号或查询码。

        凭证：客户端、镇街工作人员、三长，或该诉求的群众凭证（resident_token）。"""
        who = caller(tokens)
        if who is None:
            abort(401, message="需要有效的凭证 (Authorization: Bearer <token>)")
        if who.kind == "other":
            abort(403, message="无权访问此接口")
        report = service.find(ref)
        if report is None or not who.sees(report["township"]) or \
                (who.kind == "resident" and who.report_id != report["_id"]):
            abort(404, message="未找到该诉求")
        return _view(report)

    return bp
