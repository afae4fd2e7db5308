"""A township's choice of which case news is texted to residents (resident_policy.py)."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from shared.auth import current_principal, require

from .api import _township  # one check of the path's township for all of notify's routes
from .resident_policy import POLICIES


class ResidentPolicyIn(Schema):
    class Meta:
        unknown = RAISE

    policy = fields.String(required=True, validate=validate.OneOf(POLICIES, error="只能是 essential 或 every_step"),
                           metadata={"example": "essential",
                                     "description": "essential：只发关键短信（默认）；every_step：每一步都发"})


class ResidentPolicyOut(Schema):
    township = fields.String()
    policy = fields.String()
    description = fields.String()
    updated_at = fields.String(allow_none=True)
    updated_by = fields.String(allow_none=True)


def build_resident_messages_blueprint(service) -> Blueprint:
    bp = Blueprint("notify_resident_messages", __name__, url_prefix="/api/v1",
                   description="发给群众的短信：只发关键节点，或每一步都发（按镇设置）")

    @bp.route("/townships/<string:code>/resident-messages", methods=["GET"])
    @require("operator", "staff")
    @bp.response(200, ResidentPolicyOut)
    @bp.alt_response(404, description="township 不在凭证范围内（与不存在的镇相同）")
    def get_policy(code):
        """本镇发给群众的短信策略"""
        _township(code)
        return service.resident_policy(code)

    @bp.route("/townships/<string:code>/resident-messages", methods=["PUT"])
    @require("operator", "staff")
    @bp.arguments(ResidentPolicyIn)
    @bp.response(200, ResidentPolicyOut)
    @bp.alt_response(404, description="township 不在凭证范围内（与不存在的镇相同）")
    def put_policy(body, code):
        """设置本镇发给群众的短信策略：essential（默认）或 every_step"""
        _township(code)
        principal = current_principal()
        return service.set_resident_policy(code, body["policy"], principal.name or principal.role)

    return bp
