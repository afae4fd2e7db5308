"""HTTP for merging a duplicate case into another by hand (township staff); the merge itself is the
resident loop's (``resident_loop.ResidentLoop.merge_by_staff``)."""
from __future__ import annotations

from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields, validate

from shared.auth import current_principal, require

from .case_schemas import CaseDetailOut
from .resident_loop import BadTarget, CaseGone, ResidentLoop
from .transitions import WrongState


class MergeIn(Schema):
    class Meta:
        unknown = RAISE

    into = fields.String(required=True, validate=validate.Length(min=8, max=64),
                         metadata={"description": "保留的工单（合并后由它一并办理）"})
    note = fields.String(validate=validate.Length(max=1000), metadata={"example": "同一盏路灯，5户反映"})


def build_merge_blueprint(loop: ResidentLoop) -> Blueprint:
    bp = Blueprint("case_merge", __name__, url_prefix="/api/v1", description="合并重复诉求（镇街工作人员）")

    @bp.route("/cases/<string:case_id>/merge", methods=["POST"])
    @require("staff", "operator")
    @bp.arguments(MergeIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description="工单已办结、已上报或已合并，不能再合并")
    def merge(body, case_id):
        """把重复的工单并入 into：本工单关闭（状态 merged，注明原因），它的诉求人改为关注 into，
        办理进展和结果一并告知每位诉求人。只有待接单或办理中的工单可以合并。"""
        try:
            return loop.merge_by_staff(current_principal(), case_id, body["into"], body.get("note"))
        except CaseGone:
            abort(404, message="未找到该工单")
        except BadTarget as exc:
            abort(422, message=str(exc), errors={"json": {"into": [str(exc)]}})
        except WrongState as exc:
            abort(409, message=str(exc))

    return bp

