"""HTTP for a township's SLA policy: read it, replace it whole (validated by sla.SlaPolicySchema)."""
from __future__ import annotations

from flask_smorest import Blueprint, abort
from marshmallow import ValidationError, fields

from shared.auth import require, require_township
from shared.domain.levels import CHAIN_LEVELS

from .policies import Policies
from .sla import SlaPolicySchema


def _fixed_levels(value: list) -> None:
    if list(value) != list(CHAIN_LEVELS):
        raise ValidationError("levels are fixed: " + ", ".join(CHAIN_LEVELS))


class PolicySchema(SlaPolicySchema):
    """SlaPolicySchema as is, but with its ``levels`` check written so the OpenAPI generator can
    describe it (apispec cannot hash the list inside validate.Equal)."""

    levels = fields.List(fields.String(), load_default=lambda: list(CHAIN_LEVELS), validate=_fixed_levels,
                         metadata={"example": list(CHAIN_LEVELS)})


def build_policy_blueprint(policies: Policies) -> Blueprint:
    bp = Blueprint("sla_policy", __name__, url_prefix="/api/v1", description="时限规则：各镇(街道)的0211时限表")

    def township_or_404(code: str):
        principal = require_township(code)
        if policies.org.township(code) is None:
            abort(404, message="未找到该镇(街道)")
        return principal

    @bp.route("/townships/<string:code>/sla-policy", methods=["GET"])
    @require("operator", "staff")
    @bp.response(200, PolicySchema)
    def read(code):
        """本镇(街道)的时限规则（未修改时为默认0211规则）。返回的内容可原样修改后 PUT 回来。"""
        township_or_404(code)
        return policies.get(code)

    @bp.route("/townships/<string:code>/sla-policy", methods=["PUT"])
    @require("operator", "staff")
    @bp.arguments(PolicySchema)
    @bp.response(200, PolicySchema)
    def replace(policy, code):
        """整体替换时限规则（运维或本镇街工作人员）。只影响此后的派单与上报，已在办工单的时限不变。"""
        principal = township_or_404(code)
        return policies.put(code, policy, actor=principal.name or principal.role)

    return bp
