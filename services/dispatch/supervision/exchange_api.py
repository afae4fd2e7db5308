"""HTTP for 积分超市: township staff manage the catalogue, record and reverse exchanges; a lead sees the
catalogue, their balance and history, and exchanges their own points (exchanges.py)."""
from __future__ import annotations

from flask_smorest import Blueprint, abort

from shared.auth import current_principal, require, require_township

from .exchange_schemas import (ExchangeIn, ExchangeOut, ExchangesQuery, PointsOut, RewardIn, RewardOut, RewardPatch,
                               ReverseIn, StaffExchangeIn)
from .exchanges import ExchangeError
from .figures import local_day
from .schemas import STAFF


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ExchangeError as exc:
        if exc.field:
            abort(exc.status, message=exc.message, errors={"json": {exc.field: [exc.message]}})
        abort(exc.status, message=exc.message)


def _who(principal) -> str:
    return principal.name or principal.unit_id or principal.role


def _my_lead(sup) -> tuple[str, dict]:
    """The calling lead's township and ledger identity; 403 for a post that earns no points."""
    principal = current_principal()
    unit = sup.org.unit(principal.unit_id or "")
    if unit is None or not principal.sees(unit["township"]):
        abort(403, message="凭证没有对应的三长岗位")
    try:
        return unit["township"], sup.exchanges.lead_of_unit(unit["township"], unit["_id"])
    except ExchangeError as exc:
        abort(403, message=exc.message)


def catalogue_routes(bp: Blueprint, sup) -> None:
    """The township's catalogue (积分超市), managed by its staff."""
    @bp.route("/townships/<string:code>/rewards", methods=["GET"])
    @require(*STAFF)
    @bp.response(200, RewardOut(many=True))
    def rewards(code):
        """积分超市商品（含已下架）"""
        require_township(code)
        return sup.exchanges.catalogue(code)

    @bp.route("/townships/<string:code>/rewards", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(RewardIn)
    @bp.response(201, RewardOut)
    @bp.alt_response(409, description="积分超市已有同名商品")
    def add_reward(body, code):
        """上架商品：名称、所需积分、库存"""
        principal = require_township(code)
        return _call(sup.exchanges.add_reward, code, body, _who(principal))

    @bp.route("/townships/<string:code>/rewards/<string:item_id>", methods=["PATCH"])
    @require(*STAFF)
    @bp.arguments(RewardPatch)
    @bp.response(200, RewardOut)
    @bp.alt_response(404, description="本镇没有该商品")
    @bp.alt_response(409, description="积分超市已有同名商品")
    def change_reward(body, code, item_id):
        """修改商品：名称、积分、库存、上下架"""
        principal = require_township(code)
        return _call(sup.exchanges.change_reward, code, item_id, body, _who(principal))


def staff_exchange_routes(bp: Blueprint, sup) -> None:
    """Staff record an exchange for a lead, list exchanges and reverse one."""
    @bp.route("/townships/<string:code>/exchanges", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(StaffExchangeIn)
    @bp.response(201, ExchangeOut)
    @bp.alt_response(404, description="本镇没有该商品")
    @bp.alt_response(409, description="积分不足、库存不足、已下架，或兑换编号已用于另一笔兑换")
    def record(body, code):
        """代三长登记兑换（扣积分、减库存；同一兑换编号只记一次）"""
        principal = require_township(code)
        lead = _call(sup.exchanges.lead_of_unit, code, body["unit_id"])
        exchange, _ = _call(sup.exchanges.exchange, code, lead, body["item_id"], body["quantity"], body["key"],
                            _who(principal), body.get("note"))
        return exchange

    @bp.route("/townships/<string:code>/exchanges", methods=["GET"])
    @require(*STAFF)
    @bp.arguments(ExchangesQuery, location="query")
    @bp.response(200, ExchangeOut(many=True))
    def exchanges(query, code):
        """兑换记录（新的在前）"""
        require_township(code)
        since = local_day(query["from_"]) if query.get("from_") else None
        until = local_day(query["to"], end=True) if query.get("to") else None
        return sup.exchanges.history(code, unit_id=query.get("unit_id"), since=since, until=until, limit=query["limit"])

    @bp.route("/townships/<string:code>/leads/<string:unit_id>/points", methods=["GET"])
    @require(*STAFF)
    @bp.response(200, PointsOut)
    @bp.alt_response(404, description="本镇没有这个三长岗位，或岗位空缺")
    def lead_points(code, unit_id):
        """某位三长（按岗位）的积分余额与兑换记录"""
        require_township(code)
        try:
            lead = sup.exchanges.lead_of_unit(code, unit_id)
        except ExchangeError as exc:
            abort(404, message=exc.message)
        return {**sup.exchanges.balance(code, lead["lead_key"]),
                "exchanges": sup.exchanges.history(code, key=lead["lead_key"], limit=200)}

    @bp.route("/townships/<string:code>/exchanges/<string:exchange_id>/reverse", methods=["POST"])
    @require(*STAFF)
    @bp.arguments(ReverseIn)
    @bp.response(200, ExchangeOut)
    @bp.alt_response(404, description="本镇没有该兑换记录")
    @bp.alt_response(409, description="该兑换已撤销")
    def reverse(body, code, exchange_id):
        """撤销兑换（须写明原因）：积分退回、库存加回，台账记一条退回"""
        principal = require_township(code)
        return _call(sup.exchanges.reverse, code, exchange_id, body["reason"], _who(principal))


def lead_exchange_routes(bp: Blueprint, sup) -> None:
    """A lead's own: the catalogue on offer, their points, exchanging."""
    @bp.route("/my/rewards", methods=["GET"])
    @require("lead")
    @bp.response(200, RewardOut(many=True))
    def my_rewards():
        """本镇积分超市（在架商品）"""
        township, _ = _my_lead(sup)
        return sup.exchanges.catalogue(township, active_only=True)

    @bp.route("/my/points", methods=["GET"])
    @require("lead")
    @bp.response(200, PointsOut)
    def my_points():
        """我的积分余额与兑换记录"""
        township, lead = _my_lead(sup)
        return {**sup.exchanges.balance(township, lead["lead_key"]),
                "exchanges": sup.exchanges.history(township, key=lead["lead_key"], limit=200)}

    @bp.route("/my/exchanges", methods=["POST"])
    @require("lead")
    @bp.arguments(ExchangeIn)
    @bp.response(201, ExchangeOut)
    @bp.alt_response(404, description="本镇没有该商品")
    @bp.alt_response(409, description="积分不足、库存不足、已下架，或兑换编号已用于另一笔兑换")
    def exchange(body):
        """兑换商品（扣积分、减库存；同一兑换编号只记一次）"""
        township, lead = _my_lead(sup)
        result, _ = _call(sup.exchanges.exchange, township, lead, body["item_id"], body["quantity"], body["key"],
                          _who(current_principal()), body.get("note"))
        return result
