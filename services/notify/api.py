"""notify's HTTP edge: the delivery log for staff."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from shared.auth import current_principal, require, require_township
from shared.events import TOWNSHIP_CODE


class DeliveryQuery(Schema):
    class Meta:
        unknown = RAISE

    township = fields.String(required=True, validate=TOWNSHIP_CODE)
    case_id = fields.String(validate=validate.Length(max=64))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 100000))


class DeliveryOut(Schema):
    id = fields.String(attribute="_id")
    case_id = fields.String(allow_none=True)
    event_type = fields.String()
    recipient_role = fields.String()
    recipient_name = fields.String(allow_none=True)
    channel = fields.String()
    phone_masked = fields.String(allow_none=True)
    text = fields.String()
    length = fields.Integer()
    status = fields.String()
    provider_message_id = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    created_at = fields.String()
    sent_at = fields.String(allow_none=True)


def build_blueprint(service) -> Blueprint:
    bp = Blueprint("notify", __name__, url_prefix="/api/v1", description="通知：短信、企业微信与投递记录")

    @bp.route("/deliveries", methods=["GET"])
    @bp.arguments(DeliveryQuery, location="query")
    @bp.response(200, DeliveryOut(many=True))
    @require("operator", "staff")
    def deliveries(query):
        """投递记录（按镇、按工单查询）"""
        require_township(query["township"])
        return service.log_for(query["township"], query.get("case_id"), query["limit"], query["offset"])

    return bp
