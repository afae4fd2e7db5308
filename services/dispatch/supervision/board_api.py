"""The supervision board: its data (JSON, township staff) and the page that shows it."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint as FlaskBlueprint
from flask import Response, send_from_directory
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError

from shared.auth import require, require_township
from shared.events import TOWNSHIP_CODE

from .board import board
from .schemas import STAFF

STATIC = Path(__file__).parent / "static"


def board_routes(bp: Blueprint, sup) -> None:
    """The board's data."""
    @bp.route("/townships/<string:code>/board", methods=["GET"])
    @require(*STAFF)
    @bp.response(200)
    def board_data(code):
        """督办看板数据：在办工单（超时、预警在前）、层级×时长、三率与周趋势、积分排名与亮牌、走访超期"""
        require_township(code)
        return board(sup, code, sup.clock.now())


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
