"""How township staff assess their leads: the rule set (positive and negative lists), the points
ledger and quarterly standings, the quarterly review and its cards, and filling a vacant post. A lead
reads their own points."""
from __future__ import annotations

from flask_smorest import Blueprint, abort

from shared.auth import current_principal, require, require_township
from shared.clock import iso

from ..desk import actor_of
from shared.domain.levels import LEAD_LEVELS, POST_TITLES
from .cards import CardError
from .facts import lead_key, quarter_of
from .figures import local_day
from .rules import RuleSetIn, RuleSetOut
from .schemas import STAFF, DecisionIn, LedgerQuery, PostLeadIn, QuarterQuery, ReviewIn


def rule_routes(bp: Blueprint, sup) -> None:
    """The township's rule set."""
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


def ledger_routes(bp: Blueprint, sup) -> None:
    """The points ledger, a lead's own points and the standings."""
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


def card_routes(bp: Blueprint, sup) -> None:
    """The quarterly review, its cards, and filling the post a red card leaves vacant."""
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
