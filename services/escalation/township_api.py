"""The township's decisions on the cases it referred to city departments (township staff, for
their townships): list and read referrals, approve or refuse an extension, re-route a returned
case or choose its lead, rule on a return."""
from __future__ import annotations

from flask_smorest import Blueprint, abort
from marshmallow import RAISE

from shared.auth import current_principal, require, require_township

from .api_support import CONFLICT, STAFF, fail
from .model import Conflict, Hidden
from .schemas import ApproveIn, LeadIn, ReferralCaseOut, ReferralRowOut, ReferralsQuery, RefuseIn, RulingIn
from .service import BadField, EscalationService, case_view


def build_township_blueprint(service: EscalationService) -> Blueprint:
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

    @town.route("/referrals/<string:case_id>/extensions/<string:extension_id>/approve", methods=["POST"])
    @require(*STAFF)
    @town.arguments(ApproveIn)
    @town.response(200, ReferralCaseOut)
    @town.alt_response(409, description=CONFLICT)
    def approve(body, case_id, extension_id):
        """批准延期：办结时限顺延（默认按申请的工作日数）"""
        return _staff_action(service.decide_extension, case_id, extension_id, True,
                            working_days=body.get("working_days"), note=body.get("note"))

    @town.route("/referrals/<string:case_id>/extensions/<string:extension_id>/refuse", methods=["POST"])
    @require(*STAFF)
    @town.arguments(RefuseIn)
    @town.response(200, ReferralCaseOut)
    @town.alt_response(409, description=CONFLICT)
    def refuse(body, case_id, extension_id):
        """不批准延期：时限不变"""
        return _staff_action(service.decide_extension, case_id, extension_id, False, note=body["note"])

    @town.route("/referrals/<string:case_id>/lead", methods=["POST"])
    @require(*STAFF)
    @town.arguments(LeadIn)
    @town.response(200, ReferralCaseOut)
    @town.alt_response(409, description=CONFLICT)
    def choose_lead(body, case_id):
        """改派牵头部门：同意退单并交给另一个部门，或为未匹配的工单指定牵头部门"""
        return _staff_action(service.choose_lead, case_id, body["department_id"], body.get("note"))

    @town.route("/referrals/<string:case_id>/ruling", methods=["POST"])
    @require(*STAFF)
    @town.arguments(RulingIn)
    @town.response(200, ReferralCaseOut)
    @town.alt_response(409, description=CONFLICT)
    def ruling(body, case_id):
        """裁定退单不成立：原部门须办理（重新计时，不得再次退单）"""
        return _staff_action(service.rule, case_id, body["ruling"])

    return town


def _staff_action(fn, *args, **kwargs):
    try:
        doc = fn(current_principal(), *args, **kwargs)
    except Hidden:
        return fail(404, "未找到")
    except Conflict as exc:
        return fail(409, exc.message, code=exc.code)
    except BadField as exc:
        return fail(422, exc.message, field=exc.field)
    return case_view(doc, dept=None)
