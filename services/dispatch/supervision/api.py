"""HTTP for supervision: figures (JSON and XLSX), the rule set, the ledger and standings, the
quarterly review and cards, filling a post, visits, the board's data and the board page itself."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint as FlaskBlueprint
from flask import Response, send_from_directory
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.auth import current_principal, require, require_township
from shared.clock import iso
from shared.domain.levels import LEAD_LEVELS, POST_TITLES
from shared.domain.phones import is_valid as is_valid_phone
from shared.events import TOWNSHIP_CODE

from ..desk import actor_of
from .board import board
from .cards import CHOICES, CardError
from .export import PERIODS, filename, periods, workbook
from .facts import lead_key, quarter_of
from .figures import BY, local_day, quarter_range
from .rules import RuleSetIn, RuleSetOut
from .visits import MODES, VisitError

STAFF = ("staff", "operator")
STATIC = Path(__file__).parent / "static"
DAY_OR_TIME = validate.Regexp(r"^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?$",
                              error="日期格式应为 YYYY-MM-DD 或 ISO-8601 时间")
QUARTER = validate.Regexp(r"^\d{4}Q[1-4]$", error="季度格式应为 2026Q4")


class _In(Schema):
    class Meta:
        unknown = RAISE


class FiguresQuery(_In):
    from_ = fields.String(data_key="from", validate=DAY_OR_TIME, metadata={"example": "2026-10-01"})
    to = fields.String(validate=DAY_OR_TIME, metadata={"example": "2026-12-31", "description": "含当日"})
    by = fields.String(validate=validate.OneOf([b for b in BY if b not in ("township",)]),
                       metadata={"description": "village / level / lead / department / category / week"})
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "xlsx"]))
    period = fields.String(validate=validate.OneOf(PERIODS), metadata={"description": "XLSX 分表周期，默认 month"})

    @validates_schema
    def _order(self, data, **_):
        if data.get("from_") and data.get("to") and local_day(data["from_"]) >= local_day(data["to"], end=True):
            raise ValidationError("结束日期须晚于开始日期", field_name="to")


class CityQuery(_In):
    from_ = fields.String(data_key="from", validate=DAY_OR_TIME)
    to = fields.String(validate=DAY_OR_TIME)


class LedgerQuery(_In):
    lead = fields.String(validate=validate.Length(min=1, max=64))
    from_ = fields.String(data_key="from", validate=DAY_OR_TIME)
    to = fields.String(validate=DAY_OR_TIME)
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))


class QuarterQuery(_In):
    quarter = fields.String(validate=QUARTER, metadata={"example": "2026Q4"})


class ReviewIn(_In):
    quarter = fields.String(required=True, validate=QUARTER, metadata={"example": "2026Q4"})


class DecisionIn(_In):
    card = fields.String(required=True, validate=validate.OneOf(CHOICES),
                         metadata={"description": "red 红牌 / yellow 黄牌 / blue 蓝牌 / none 不亮牌"})
    note = fields.String(validate=validate.Length(min=1, max=500))


class PostLeadIn(_In):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=20), validate.Regexp(r"\S")])
    phone = fields.String(required=True, metadata={"example": "13800000000"})
    wecom_id = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_\-@.]{0,63}$"))

    @validates_schema
    def _phone(self, data, **_):
        if "phone" in data and not is_valid_phone(data["phone"]):
            raise ValidationError("手机号或座机号格式不正确", field_name="phone")


class VisitIn(_In):
    household_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    mode = fields.String(required=True, validate=validate.OneOf(list(MODES)),
                         metadata={"description": "in_person 上门 / phone 电话 / wechat 微信"})
    findings = fields.String(validate=validate.Length(min=1, max=1000), metadata={"example": "老人身体好，家中漏水已报修"})
    at = fields.AwareDateTime(metadata={"description": "走访时间，默认现在"})
    report_id = fields.String(validate=validate.Length(min=8, max=64),
                              metadata={"description": "走访中代群众提交的诉求（POST /api/v1/reports, channel=lead）的 id"})


class VisitsQuery(_In):
    household_id = fields.String(validate=validate.Length(min=1, max=64))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


def _period(query: dict, now) -> tuple[str, str]:
    q_start, q_end = quarter_range(now)
    since = local_day(query["from_"]) if query.get("from_") else iso(q_start)
    until = local_day(query["to"], end=True) if query.get("to") else iso(q_end)
    if since >= until:
        abort(422, message="开始日期须早于结束日期（未给 to 时为本季度末）",
              errors={"query": {"from": ["开始日期须早于结束日期"]}})
    return since, until


def _xlsx(sup, code: str, since: str, until: str, by: str | None, period: str) -> Response:
    now = sup.clock.now()
    sheets = [(title, sup.figures.compute(code, a, b, now, by=by)) for title, a, b in periods(since, until, period)]
    name = (sup.org.township(code) or {}).get("name", code)
    body = workbook(name, sheets, by)
    return Response(body, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{filename(code, since, until)}"'})


def build_supervision_blueprint(sup) -> Blueprint:
    bp = Blueprint("supervision", __name__, url_prefix="/api/v1",
                   description="督办与考核：三率统计与导出、积分台账、正负面清单、季度亮牌、走访")

    # Dates and quarters that pass their patterns but name no real day (month 13, year 0), and
    # names a spreadsheet cannot hold, are the caller's error: a 422 that says so, never a 500.
    from openpyxl.utils.exceptions import IllegalCharacterError

    @bp.errorhandler(ValueError)
    @bp.errorhandler(OverflowError)
    @bp.errorhandler(IllegalCharacterError)
    def _bad_value(exc):
        from flask import jsonify

        from shared.domain.phones import mask_text

        return jsonify(code=422, status="Unprocessable Entity",
                       message=mask_text(f"参数无效：{exc}")[:300]), 422

    # -- figures ----------------------------------------------------------------------------------
    @bp.route("/townships/<string:code>/figures", methods=["GET"])
    @require(*STAFF)
    @bp.arguments(FiguresQuery, location="query")
    @bp.response(200)
    def figures(query, code):
        """三率与工作量：收集、按时接单（响应率）、办结（解决率）、满意率、2天解决率、当前超时、逐级上交与超时、
        接单/办结用时中位数与P90、调解矛盾纠纷、排查安全隐患、提供微服务。by 分组；format=xlsx 导出。"""
        require_township(code)
        since, until = _period(query, sup.clock.now())
        if query["format"] == "xlsx":
            return _xlsx(sup, code, since, until, query.get("by") or "village", query.get("period") or "month")
        return sup.figures.compute(code, since, until, sup.clock.now(), by=query.get("by"))

    @bp.route("/townships/<string:code>/figures/export", methods=["GET"])
    @require(*STAFF)
    @bp.arguments(FiguresQuery, location="query")
    @bp.response(200, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    def export(query, code):
        """上报用统计表（XLSX）：每个周期一张表（period=month/quarter/week/whole），中文表头。"""
        require_township(code)
        since, until = _period(query, sup.clock.now())
        return _xlsx(sup, code, since, until, query.get("by") or "village", query.get("period") or "month")

    @bp.route("/cities/<string:city>/figures", methods=["GET"])
    @require("operator")
    @bp.arguments(CityQuery, location="query")
    @bp.response(200)
    def city_figures(query, city):
        """全市各镇(街道)三率（运维）"""
        if not city.isdigit() or len(city) != 6:
            abort(404, message="未找到")
        since, until = _period(query, sup.clock.now())
        return {"city": city, "from": since, "to": until, "rows": sup.figures.city(city, since, until, sup.clock.now())}

    # -- the rule set -----------------------------------------------------------------------------
    @bp.route("/townships/<string:code>/rules", methods=["GET"])
    @require(*STAFF)
    @bp.response(200, RuleSetOut)
    def get_rules(code):
        """积分正负面清单与亮牌阈值"""
        require_township(code)
        return sup.rules.get(code)

    @bp.route("/townships/<string:code>/rules", methods=["PUT"])
    @require(*STAFF)
    @bp.arguments(RuleSetIn)
    @bp.response(200, RuleSetOut)
    def put_rules(body, code):
        """修改正负面清单（整份替换；已记的积分不变，新条目按新分值）"""
        principal = require_township(code)
        if sup.org.township(code) is None:
            abort(404, message="未找到")
        return sup.rules.put(code, body, actor=principal.name or principal.role)

    # -- ledger and standings ---------------------------------------------------------------------
    @bp.route("/townships/<string:code>/ledger", methods=["GET"])
    @require(*STAFF)
    @bp.arguments(LedgerQuery, location="query")
    @bp.response(200)
    def ledger(query, code):
        """积分台账：每条都指向引起它的事件（cause）与工单"""
        require_township(code)
        since = local_day(query["from_"]) if query.get("from_") else None
        until = local_day(query["to"], end=True) if query.get("to") else None
        return sup.ledger.list(code, lead=query.get("lead"), since=since, until=until, limit=query["limit"])

    @bp.route("/my/ledger", methods=["GET"])
    @require("lead")
    @bp.response(200)
    def my_ledger():
        """我的积分（三长）"""
        principal = current_principal()
        unit = sup.org.unit(principal.unit_id or "") or {}
        if not unit or not principal.sees(unit["township"]) or unit["level"] not in LEAD_LEVELS:
            return {"points": 0, "entries": []}
        key = lead_key(unit["level"], unit["_id"], (unit.get("lead") or {}).get("name"))
        entries = sup.ledger.list(unit["township"], lead=key, limit=500)
        return {"lead_key": key, "points": round(sum(e["points"] for e in entries), 2), "entries": entries}

    @bp.route("/townships/<string:code>/standings", methods=["GET"])
    @require(*STAFF)
    @bp.arguments(QuarterQuery, location="query")
    @bp.response(200)
    def standings(query, code):
        """季度积分排名（含评价、超时、走访超期）"""
        require_township(code)
        quarter = query.get("quarter") or quarter_of(iso(sup.clock.now()))
        return sup.cards.standings(code, quarter)

    # -- cards ------------------------------------------------------------------------------------
    @bp.route("/townships/<string:code>/reviews", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(ReviewIn)
    @bp.response(201)
    def review(body, code):
        """季度研判：按清单阈值为每位在岗三长拟定蓝/黄/红牌（已决定的不变）"""
        principal = require_township(code)
        return sup.cards.review(code, body["quarter"], actor=principal.name or principal.role)

    @bp.route("/townships/<string:code>/cards", methods=["GET"])
    @require(*STAFF)
    @bp.arguments(QuarterQuery, location="query")
    @bp.response(200)
    def cards(query, code):
        """本季度亮牌（拟定与决定）"""
        require_township(code)
        return sup.cards.list(code, query.get("quarter") or quarter_of(iso(sup.clock.now())))

    @bp.route("/townships/<string:code>/cards/<string:card_id>/decision", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(DecisionIn)
    @bp.response(200)
    def decide(body, code, card_id):
        """确认或调整亮牌；红牌即终止任职：岗位空缺，所办工单转上一级，待补齐"""
        principal = require_township(code)
        card = sup.cards.get(card_id)
        if card is None or card["township"] != code:
            abort(404, message="未找到")
        try:
            return sup.cards.decide(card_id, body["card"], body.get("note"), actor_of(principal))
        except CardError as exc:
            abort(409, message=str(exc))

    @bp.route("/townships/<string:code>/units/<string:unit_id>/lead", methods=["PUT"])
    @require(*STAFF)
    @bp.arguments(PostLeadIn)
    @bp.response(200)
    def fill(body, code, unit_id):
        """补齐岗位（动态补齐）：为空缺的邻长/组长/片长岗位指定新人"""
        principal = require_township(code)
        unit = sup.org.unit(unit_id)
        if unit is None or unit["township"] != code:
            abort(404, message="未找到")
        if unit["level"] not in LEAD_LEVELS:
            abort(422, message="只有邻长、组长、片长岗位可以指定人员", errors={"json": {"unit_id": ["不是三长岗位"]}})
        doc = sup.org.fill_post(unit_id, body, actor=principal.name or principal.role)
        lead = doc.get("lead") or {}
        return {"unit_id": unit_id, "level": doc["level"], "title": POST_TITLES[doc["level"]], "name": doc["name"],
                "lead_name": lead.get("name")}

    # -- visits -----------------------------------------------------------------------------------
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

    # -- the board's data -------------------------------------------------------------------------
    @bp.route("/townships/<string:code>/board", methods=["GET"])
    @require(*STAFF)
    @bp.response(200)
    def board_data(code):
        """督办看板数据：在办工单（超时、预警在前）、层级×时长、三率与周趋势、积分排名与亮牌、走访超期"""
        require_township(code)
        return board(sup, code, sup.clock.now())

    return bp


def build_board_page() -> FlaskBlueprint:
    page = FlaskBlueprint("board", __name__)

    @page.get("/board/<string:code>")
    def board_page(code):
        # The page itself holds no data: its script asks the JSON API with the staff token.
        try:
            TOWNSHIP_CODE(code)
        except ValidationError:
            abort(404, message="未找到")
        html = (STATIC / "board.html").read_text(encoding="utf-8").replace("{{TOWNSHIP}}", code)
        return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @page.get("/board/static/<path:name>")
    def board_static(name):
        return send_from_directory(STATIC, name, max_age=300)

    return page
