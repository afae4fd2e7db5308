"""The figures (the three rates and workloads) for township staff and, city-wide, the operator:
JSON, or XLSX for reporting upwards."""
from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint, abort

from shared.auth import require, require_township
from shared.clock import iso

from .export import filename, periods, workbook
from .figures import local_day, quarter_range
from .schemas import STAFF, CityQuery, FiguresQuery


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
    exchanges = sup.exchanges.history(code, since=since, until=until, limit=100_000)
    body = workbook(name, sheets, by, exchanges)
    return Response(body, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{filename(code, since, until)}"'})


def figure_routes(bp: Blueprint, sup) -> None:
    """Figures of a township (JSON or XLSX) and of a city."""
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
