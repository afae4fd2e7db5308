"""intake's HTTP edge: submit a report, read the resident's view."""
from __future__ import annotations

from flask_smorest import Blueprint, abort

from shared.auth import current_principal, require, require_township

from .reports import STATUS_NAMES
from .schemas import ReportCreated, ReportIn, ReportView


def _view(report: dict) -> dict:
    return {**report, "status_text": STATUS_NAMES.get(report["status"], report["status"])}


def build_blueprint(service) -> Blueprint:
    bp = Blueprint("intake", __name__, url_prefix="/api/v1", description="受理：群众点单与办理进度查询")

    @bp.route("/reports", methods=["POST"])
    @bp.arguments(ReportIn)
    @bp.response(201, ReportCreated)
    @require("operator", "client", "staff", "lead")
    def submit(body):
        """提交诉求（群众点单）。住户编号、地址或登记电话任一项即可定位到邻。"""
        require_township(body["township"])
        return _view(service.submit(body))

    @bp.route("/reports/<string:ref>", methods=["GET"])
    @bp.response(200, ReportView)
    @require("operator", "client", "staff", "lead")
    def read(ref):
        """群众查看办理进度：状态、当前经办层级与人员（电话脱敏）、时间线。ref 为编号或查询码。"""
        report = service.find(ref)
        principal = current_principal()
        if report is None or not principal.sees(report["township"]):
            abort(404, message="未找到该诉求")
        return _view(report)

    return bp
