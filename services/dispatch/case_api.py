"""HTTP for leads' and township staff's work on cases. Decode, validate, call the desk, map errors."""
from __future__ import annotations

from flask_smorest import Blueprint, abort

from shared.auth import current_principal, require, require_township

from .case_schemas import (CaseDetailOut, CaseOut, EscalateIn, HeldQuery, NoteIn, OptionalNoteIn, PauseIn,
                           ReassignIn, RecategoriseIn, ResolveIn, TownshipCasesQuery)
from .desk import BadField, CaseDesk, CaseNotVisible, NotHolder
from .transitions import WrongState

HOLDERS = ("lead", "staff", "operator")
STAFF = ("staff", "operator")
CONFLICT = "工单当前状态不允许此操作（原因见 message）"


def _call(fn, *args, **kwargs):
    try:
        return fn(current_principal(), *args, **kwargs)
    except CaseNotVisible:
        abort(404, message="未找到该工单")
    except NotHolder as exc:
        abort(403, message=str(exc))
    except WrongState as exc:
        abort(409, message=str(exc))
    except BadField as exc:
        abort(422, message=exc.message, errors={"json": {exc.field: [exc.message]}})


def build_case_blueprint(desk: CaseDesk) -> Blueprint:
    bp = Blueprint("cases", __name__, url_prefix="/api/v1", description="工单：三长接单、进展、办结、上报；镇(街道)改派、督办")
    # Registered in this order so the OpenAPI document lists the operations as it always has.
    _read_routes(bp, desk)
    _holder_routes(bp, desk)
    _staff_routes(bp, desk)
    _pause_routes(bp, desk)
    return bp


def _read_routes(bp: Blueprint, desk: CaseDesk) -> None:
    """Lists and one case: a lead's or staff's own, a township's."""

    @bp.route("/my/cases", methods=["GET"])
    @require("lead", "staff")
    @bp.arguments(HeldQuery, location="query")
    @bp.response(200, CaseOut(many=True))
    def held(query):
        """我经办的工单。show：open 全部在办 / due_soon 即将超时 / overdue 已超时 / resolved / referred / all"""
        return _call(desk.held, query["show"], query["limit"], query["skip"])

    @bp.route("/townships/<string:code>/cases", methods=["GET"])
    @require(*STAFF)
    @bp.arguments(TownshipCasesQuery, location="query")
    @bp.response(200, CaseOut(many=True))
    def township_cases(query, code):
        """本镇(街道)全部工单（镇街工作人员）。可按状态、层级、单位、时限和未答复督办筛选。"""
        require_township(code)
        return desk.of_township(code, show=query["show"], level=query.get("level"), unit_id=query.get("unit_id"),
                                unanswered_only=query.get("supervision") == "unanswered",
                                limit=query["limit"], skip=query["skip"])

    @bp.route("/cases/<string:case_id>", methods=["GET"])
    @require(*HOLDERS)
    @bp.response(200, CaseDetailOut)
    def read(case_id):
        """工单详情：完整时间线（谁、何时、为何）、督办、超时记录和统计。"""
        return _call(desk.read, case_id)


def _holder_routes(bp: Blueprint, desk: CaseDesk) -> None:
    """What whoever holds a case does with it: accept, progress, resolve, escalate, answer supervision."""

    @bp.route("/cases/<string:case_id>/accept", methods=["POST"])
    @require(*HOLDERS)
    @bp.arguments(OptionalNoteIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description=CONFLICT)
    def accept(body, case_id):
        """接单（签收）"""
        return _call(desk.accept, case_id, body.get("note"))

    @bp.route("/cases/<string:case_id>/progress", methods=["POST"])
    @require(*HOLDERS)
    @bp.arguments(NoteIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description=CONFLICT)
    def progress(body, case_id):
        """填报办理进展"""
        return _call(desk.progress, case_id, body["note"])

    @bp.route("/cases/<string:case_id>/resolve", methods=["POST"])
    @require(*HOLDERS)
    @bp.arguments(ResolveIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description=CONFLICT)
    def resolve(body, case_id):
        """办结：note 写明做了什么。带照片时先以 dry_run 校验，再上传照片，最后办结。"""
        return _call(desk.resolve, case_id, body["note"], dry_run=body["dry_run"], photos=body.get("photos"))

    @bp.route("/cases/<string:case_id>/escalate", methods=["POST"])
    @require(*HOLDERS)
    @bp.arguments(EscalateIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description=CONFLICT)
    def escalate(body, case_id):
        """上报上一级（邻→组→片→村→镇→市直部门）；空缺岗位自动跳过。"""
        return _call(desk.escalate, case_id, body["reason"], body.get("note"))

    @bp.route("/cases/<string:case_id>/supervisions/<string:supervision_id>/answer", methods=["POST"])
    @require(*HOLDERS)
    @bp.arguments(NoteIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description=CONFLICT)
    def answer(body, case_id, supervision_id):
        """答复督办"""
        return _call(desk.answer, case_id, supervision_id, body["note"])


def _staff_routes(bp: Blueprint, desk: CaseDesk) -> None:
    """What only township staff do: reassign, recategorise, supervise."""

    @bp.route("/cases/<string:case_id>/reassign", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(ReassignIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description=CONFLICT)
    def reassign(body, case_id):
        """改派给本镇(街道)任一单位（镇街工作人员）"""
        return _call(desk.reassign, case_id, body["unit_id"], body.get("note"))

    @bp.route("/cases/<string:case_id>", methods=["PATCH"])
    @require(*STAFF)
    @bp.arguments(RecategoriseIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description=CONFLICT)
    def recategorise(body, case_id):
        """修改分类或时限等级（镇街工作人员）；新分类默认带来它的等级，时限按新等级重算。"""
        return _call(desk.recategorise, case_id, body.get("category"), body.get("tier"), body.get("note"))

    @bp.route("/cases/<string:case_id>/supervise", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(NoteIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description=CONFLICT)
    def supervise(body, case_id):
        """督办：留言，经办人须答复"""
        return _call(desk.supervise, case_id, body["note"])


def _pause_routes(bp: Blueprint, desk: CaseDesk) -> None:
    """Stopping the clock while the holder waits for the resident or an outside event (pausing.py)."""

    @bp.route("/cases/<string:case_id>/pause", methods=["POST"])
    @require(*HOLDERS)
    @bp.arguments(PauseIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description=CONFLICT + "；或挂起次数、累计时长已达上限")
    def pause(body, case_id):
        """挂起（暂停计时）：待群众补充材料或等待外部事项。群众补充后、到约定时间或达到上限时自动恢复。"""
        return _call(desk.pause, case_id, body["reason"], body["note"], body.get("until"))

    @bp.route("/cases/<string:case_id>/resume", methods=["POST"])
    @require(*HOLDERS)
    @bp.arguments(OptionalNoteIn)
    @bp.response(200, CaseDetailOut)
    @bp.alt_response(409, description=CONFLICT)
    def resume(body, case_id):
        """恢复办理（恢复计时）：时限按挂起用掉的工作日时间顺延。"""
        return _call(desk.resume, case_id, body.get("note"))
