"""The figures as the spreadsheet a township reports upward: one sheet per period, Chinese headers."""
from __future__ import annotations

import io
from datetime import timedelta

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from shared.clock import iso, parse_iso
from shared.domain.localtime import local_zone


BY_TITLES = {"village": "村(社区)", "level": "层级", "lead": "三长", "department": "市直部门",
             "category": "问题类别", "week": "周", "township": "镇(街道)", None: "单位"}
# (header, key, kind): kind "n" a count, "r" a rate, "h" seconds shown as hours.
COLUMNS = (
    ("收集问题(件)", "received", "n"), ("按时接单(件)", "accepted_on_time", "n"), ("响应率", "response_rate", "r"),
    ("办结(件)", "resolved", "n"), ("解决率", "resolve_rate", "r"), ("评价(件)", "rated", "n"),
    ("满意(件)", "satisfied", "n"), ("满意率", "satisfaction_rate", "r"), ("2天内解决(件)", "resolved_within_2d", "n"),
    ("2天解决率", "within_2d_rate", "r"), ("当前超时(件)", "overdue_now", "n"), ("逐级上交(次)", "escalations", "n"),
    ("超时(次)", "breaches", "n"), ("接单用时中位数(小时)", "accept_median_s", "h"),
    ("接单用时P90(小时)", "accept_p90_s", "h"), ("办结用时中位数(小时)", "resolve_median_s", "h"),
    ("办结用时P90(小时)", "resolve_p90_s", "h"), ("调解矛盾纠纷(件)", "disputes_mediated", "n"),
    ("排查安全隐患(个)", "hazards_found", "n"), ("提供微服务(件)", "micro_services", "n"),
    # pausing (挂起): beside time to solve, which stays wall-clock time; the 2-day share leaves it out
    ("挂起时长合计(小时)", "paused_s", "h"), ("当前挂起(件)", "paused_now", "n"),
)
# The 积分兑换 sheet (exchanges.py): one row per exchange in the whole range.
EXCHANGE_COLUMNS = (("兑换时间", "at"), ("三长", "lead_name"), ("岗位", "unit_name"), ("商品", "item_name"),
                    ("数量", "quantity"), ("积分", "points"), ("状态", "status"), ("登记人", "by"),
                    ("撤销原因", "reason"))
EXCHANGE_STATUS = {"done": "已兑换", "reversed": "已撤销"}
PERIODS = ("month", "quarter", "week", "whole")


def periods(since: str, until: str, period: str) -> list[tuple[str, str, str]]:
    """[(sheet title, from, to)] covering [since, until), cut at local month/quarter/week boundaries."""
    start, end = parse_iso(since).astimezone(local_zone()), parse_iso(until).astimezone(local_zone())
    if period == "whole":
        return [(f"{start:%Y-%m-%d}至{(end - timedelta(seconds=1)):%Y-%m-%d}", since, until)]
    out = []
    cursor = start
    while cursor < end:
        if period == "week":
            boundary = (cursor - timedelta(days=cursor.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
            nxt = boundary + timedelta(days=7)
            title = f"{boundary:%Y-%m-%d}周"
        else:
            months = 3 if period == "quarter" else 1
            first_month = (cursor.month - 1) // months * months + 1
            boundary = cursor.replace(month=first_month, day=1, hour=0, minute=0, second=0, microsecond=0)
            month = first_month + months
            nxt = boundary.replace(year=boundary.year + (month - 1) // 12, month=(month - 1) % 12 + 1)
            title = (f"{boundary.year}年第{(first_month - 1) // 3 + 1}季度" if period == "quarter"
                     else f"{boundary.year}年{boundary.month}月")
        out.append((title, iso(max(cursor, start)), iso(min(nxt, end))))
        cursor = nxt
    return out


def _cell(value, kind):
    if value is None:
        return None
    if kind == "h":
        return round(value / 3600, 1)
    return value


def exchange_sheet(wb: Workbook, exchanges: list[dict]) -> None:
    ws = wb.create_sheet(title="积分兑换")
    ws.append([h for h, _ in EXCHANGE_COLUMNS])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for e in sorted(exchanges, key=lambda e: e["at"]):
        local = parse_iso(e["at"]).astimezone(local_zone()).strftime("%Y-%m-%d %H:%M")
        ws.append([local if key == "at" else EXCHANGE_STATUS.get(e[key], e[key]) if key == "status" else e.get(key)
                   for _, key in EXCHANGE_COLUMNS])
    done = [e for e in exchanges if e["status"] == "done"]
    ws.append(["合计（不含撤销）", None, None, None, sum(e["quantity"] for e in done), sum(e["points"] for e in done)])
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)
    for i, width in enumerate((18, 10, 16, 20, 6, 8, 8, 12, 24), start=1):
        ws.column_dimensions[get_column_letter(i)].width = width


def workbook(township_name: str, sheets: list[tuple[str, dict]], by: str | None,
             exchanges: list[dict] | None = None) -> bytes:
    wb = Workbook()
    wb.remove(wb.active)
    head_fill = PatternFill("solid", fgColor="DDEBF7")
    for title, figures in sheets:
        ws = wb.create_sheet(title=title[:31])
        first = parse_iso(figures["from"]).astimezone(local_zone())
        last = parse_iso(figures["to"]).astimezone(local_zone()) - timedelta(seconds=1)
        ws.append([f"{township_name}“三长制”工作情况统计表（{first:%Y年%m月%d日}—{last:%Y年%m月%d日}）"])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(COLUMNS) + 1)
        ws["A1"].font = Font(bold=True, size=14)
        ws["A1"].alignment = Alignment(horizontal="center")
        ws.append([BY_TITLES.get(by, "单位")] + [h for h, _, _ in COLUMNS])
        for cell in ws[2]:
            cell.font = Font(bold=True)
            cell.fill = head_fill
            cell.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")
        for label, row, bold in [("合计", figures["total"], True)] + [(r.get("label"), r, False) for r in figures["rows"]]:
            ws.append([label] + [_cell(row.get(key), kind) for _, key, kind in COLUMNS])
            if bold:
                for cell in ws[ws.max_row]:
                    cell.font = Font(bold=True)
            for i, (_, _, kind) in enumerate(COLUMNS, start=2):
                if kind == "r":
                    ws.cell(ws.max_row, i).number_format = "0.0%"
        ws.column_dimensions["A"].width = 28
        for i in range(2, len(COLUMNS) + 2):
            ws.column_dimensions[get_column_letter(i)].width = 11
        ws.row_dimensions[2].height = 45
        ws.freeze_panes = "B3"
    if exchanges is not None:
        exchange_sheet(wb, exchanges)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def filename(township: str, since: str, until: str) -> str:
    a = parse_iso(since).astimezone(local_zone())
    b = parse_iso(until).astimezone(local_zone()) - timedelta(seconds=1)
    return f"sanzhang-figures-{township}-{a:%Y%m%d}-{b:%Y%m%d}.xlsx"



