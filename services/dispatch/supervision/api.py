"""HTTP for supervision: figures (JSON and XLSX), the rule set, the ledger and standings, the
quarterly review and cards, filling a post, visits, the board's data and the board page itself.

One module per audience and job: ``figures_api`` (the rates), ``assessment_api`` (rules, ledger,
standings, cards, filling a post), ``visits_api``, ``board_api`` (the board's data and page); the
schemas they accept are in ``schemas``.
"""
from __future__ import annotations

from flask_smorest import Blueprint

from .assessment_api import card_routes, ledger_routes, rule_routes
from .board_api import board_routes, build_board_page
from .exchange_api import catalogue_routes, lead_exchange_routes, staff_exchange_routes
from .figures_api import figure_routes
from .visits_api import visit_routes

__all__ = ["build_board_page", "build_supervision_blueprint"]


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

    # Registered in this order so the OpenAPI document lists the operations as it always has.
    figure_routes(bp, sup)
    rule_routes(bp, sup)
    ledger_routes(bp, sup)
    card_routes(bp, sup)
    visit_routes(bp, sup)
    board_routes(bp, sup)
    # 积分超市 (exchanges.py)
    catalogue_routes(bp, sup)
    staff_exchange_routes(bp, sup)
    lead_exchange_routes(bp, sup)
    return bp
