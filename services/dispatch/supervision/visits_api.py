"""Visits to households: a lead logs them and sees whom to visit next; township staff read the
visits and the overdue households."""
from __future__ import annotations

from flask_smorest import Blueprint, abort

from shared.auth import current_principal, require, require_township

from .schemas import STAFF, VisitIn, VisitsQuery
from .visits import VisitError


def visit_routes(bp: Blueprint, sup) -> None:
    """Logging and reading visits."""
    @bp.route("/visits", methods=["POST"])
    @require("lead", *STAFF)
    @bp.arguments(VisitIn)
    @bp.response(201)
    def log_visit(body):
        """记录走访（上门/电话/微信）与发现；发现问题时先以 channel=lead 提交诉求，再带上 report_id"""
        try:
            return sup.visits.log(current_principal(), body)
        except LookupError:
            abort(404, message="未找到该住户")
        except VisitError as exc:
            abort(422, message=exc.message, errors={"json": {exc.field: [exc.message]}})

    @bp.route("/my/households", methods=["GET"])
    @require("lead")
    @bp.response(200)
    def my_households():
        """我联系的住户与下次走访期限（重点户在前）"""
        return sup.visits.households_of(current_principal())

    @bp.route("/townships/<string:code>/visits", methods=["GET"])
    @require(*STAFF)
    @bp.arguments(VisitsQuery, location="query")
    @bp.response(200)
    def visits(query, code):
        """走访记录"""
        require_township(code)
        return sup.visits.list(code, query.get("household_id"), query["limit"])

    @bp.route("/townships/<string:code>/visits/overdue", methods=["GET"])
    @require(*STAFF)
    @bp.response(200)
    def overdue_visits(code):
        """走访超期的住户（重点户每周、其他每月）"""
        require_township(code)
        return sup.visits.overdue(code)
