"""The HTML report: one self-contained page (inline SVG, no script, no external file) with the
year's figures as the seeds report them — 三率, the 2-day share, per level, per department — the
load per week, time to accept and to solve by level, breaches, where cases stop, and the closing
count. Given two outcomes (what-if), every table and chart shows them side by side."""
from __future__ import annotations

from html import escape

from .summary import LEVEL_NAMES, summarise

COLOURS = ("#c0392b", "#2471a3", "#1e8449", "#b9770e")
RATES = (("response_rate", "响应率"), ("resolve_rate", "解决率"), ("satisfaction_rate", "满意率"),
         ("within_2d_rate", "2天解决率"))


CLOSING = (("reports", "提交的诉求"), ("instant_answers", "即时答复"), ("cases", "工单"),
           ("reports_with_two_cases", "一件诉求两张工单"), ("reports_without_case", "诉求没有工单"),
           ("case_assigned_events", "派单事件"), ("dead_letters", "死信"), ("waiting_on_bus", "总线上未处理"),
           ("outbox_backlog", "未发布的事件"), ("ok", "核对通过"))


def pct(v) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def hours(seconds) -> str:
    return "—" if seconds is None else f"{seconds / 3600:.1f} 小时"


def bars(title: str, labels: list[str], series: list[tuple[str, list[float]]], unit: str = "") -> str:
    """A grouped bar chart as inline SVG: one group per label, one bar per series."""
    width, height, left, bottom = 760, 240, 48, 40
    top = max([v for _, vals in series for v in vals] + [1e-9])
    group = (width - left - 10) / max(1, len(labels))
    bar = max(1.0, group * 0.8 / max(1, len(series)))
    parts = [f'<svg viewBox="0 0 {width} {height + bottom}" width="100%" role="img" aria-label="{escape(title)}">']
    for k in range(5):
        y = 10 + (height - 10) * k / 4
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y:.0f}" y2="{y:.0f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.0f}" font-size="10" text-anchor="end">{top * (1 - k / 4):.3g}{unit}</text>')
    for i, label in enumerate(labels):
        x0 = left + i * group + group * 0.1
        for j, (name, vals) in enumerate(series):
            h = (height - 10) * (vals[i] or 0) / top
            parts.append(f'<rect x="{x0 + j * bar:.1f}" y="{height - h:.1f}" width="{bar * 0.95:.1f}" height="{h:.1f}" '
                         f'fill="{COLOURS[j % len(COLOURS)]}"><title>{escape(name)} {escape(label)}: {vals[i]:.3g}{unit}</title></rect>')
        if len(labels) <= 16 or i % max(1, len(labels) // 12) == 0:
            parts.append(f'<text x="{x0:.0f}" y="{height + 14}" font-size="10">{escape(label)}</text>')
    legend = "".join(f'<tspan fill="{COLOURS[j % len(COLOURS)]}">■ {escape(n)}　</tspan>' for j, (n, _) in enumerate(series))
    parts.append(f'<text x="{left}" y="{height + 32}" font-size="11">{legend}</text></svg>')
    return f"<h3>{escape(title)}</h3>" + "".join(parts)


def table(head: list[str], rows: list[list]) -> str:
    th = "".join(f"<th>{escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def render(outcomes: list) -> str:
    sums = [summarise(o) for o in outcomes]
    names = [o.label for o in outcomes]
    title = "三长制模拟：" + (" 对比 ".join(names) if len(outcomes) > 1 else names[0])
    sections = [_headline(outcomes, sums), _levels(names, sums), _load(names, sums), _departments(names, sums),
                _points(outcomes), _boards(outcomes), _closing(outcomes)]
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            '<style>body{font-family:sans-serif;max-width:900px;margin:auto;padding:1em}table{border-collapse:collapse;'
            'margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}'
            'h2{border-bottom:2px solid #c0392b}</style></head><body>'
            f'<h1>{escape(title)}</h1>' + "".join(sections) + "</body></html>")


def _headline(outcomes, sums) -> str:
    o = outcomes[0]
    intro = (f"<p>城市：{o.city.get('townships')} 个镇（街道）、{o.city.get('villages')} 个村（社区）、{o.city.get('areas')} 个片、"
             f"{o.city.get('groups')} 个组、{o.city.get('neighbourhoods')} 个邻、{o.city.get('households')} 户"
             f"（重点户 {o.city.get('key_households')}，空缺岗位 {o.city.get('vacant_posts')}）。</p>")
    head = ["指标", *[x.label for x in outcomes]]
    rows = [[label, *[pct(s["total"].get(key)) for s in sums]] for key, label in RATES]
    for key, label in (("received", "收集问题（件）"), ("resolved", "办结（件）"), ("escalations", "上交（次）"),
                       ("breaches", "超时（次）"), ("rated", "评价（件）")):
        rows.append([label, *[s["total"].get(key, 0) for s in sums]])
    rows.append(["办结用时中位数（各镇按件数加权）", *[hours(s["total"].get("resolve_median_s")) for s in sums]])
    for key, label in (("visits", "邻长走访（次）"), ("visit_findings", "走访收集问题（条）"), ("visits_missed", "未走访（岗位空缺或缺勤）")):
        rows.append([label, *[x.counts.get(key, 0) for x in outcomes]])
    return "<h2>三率与2天解决率</h2>" + intro + table(head, rows)


def _levels(names, sums) -> str:
    out = ["<h2>各层级：接单、办结、超时、上交</h2>"]
    labels = [LEVEL_NAMES[lv] for lv in LEVEL_NAMES]
    for key, title, unit, scale in (("received", "各层级经手的案件（负荷）", "", 1),
                                    ("accept_median_s", "接单用时中位数（小时）", "h", 3600),
                                    ("resolve_median_s", "办结用时中位数（小时）", "h", 3600),
                                    ("breaches", "超时次数", "", 1), ("escalations", "上交次数", "", 1),
                                    ("resolved", "在本级办结（案件停在哪里）", "", 1)):
        series = [(n, [(s["levels"].get(lv, {}).get(key) or 0) / scale for lv in LEVEL_NAMES]) for n, s in zip(names, sums)]
        out.append(bars(title, labels, series, unit))
    head = ["层级", *[f"{n}：{h}" for n in names for h in ("经手", "办结", "超时", "上交", "2天解决率")]]
    rows = [[LEVEL_NAMES[lv], *[v for s in sums for v in _level_cells(s["levels"].get(lv, {}))]] for lv in LEVEL_NAMES]
    return "".join(out) + table(head, rows)


def _level_cells(row: dict) -> list:
    return [row.get("received", 0), row.get("resolved", 0), row.get("breaches", 0), row.get("escalations", 0),
            pct(row.get("within_2d_rate"))]


def _load(names, sums) -> str:
    weeks = sorted({w for s in sums for w in s["weeks"]})
    series = [(n, [s["weeks"].get(w, 0) for w in weeks]) for n, s in zip(names, sums)]
    return "<h2>一年的负荷</h2>" + bars("每周收集的问题（件）", weeks, series)


def _departments(names, sums) -> str:
    depts = sorted({d for s in sums for d in s["departments"]})
    if not depts:
        return "<h2>市直部门</h2><p>没有案件上交到市直部门。</p>"
    head = ["部门", *[f"{n}：{h}" for n in names for h in ("承办", "办结", "超时")]]
    rows = [[d, *[v for s in sums for v in (s["departments"].get(d, {}).get("received", 0),
                                              s["departments"].get(d, {}).get("resolved", 0),
                                              s["departments"].get(d, {}).get("breaches", 0))]] for d in depts]
    return "<h2>市直部门</h2>" + table(head, rows)


def _points(outcomes) -> str:
    head = ["", *[o.label for o in outcomes]]
    keys = sorted({k for o in outcomes for k in o.series.get("cards", {})})
    rows = [[f"{k}（张）", *[o.series.get("cards", {}).get(k, 0) for o in outcomes]] for k in keys]
    rows.append(["积分合计", *[o.series.get("points", 0) for o in outcomes]])
    rows.append(["补齐的岗位（动态补齐）", *[o.counts.get("refilled", 0) for o in outcomes]])
    return "<h2>积分与蓝黄红牌</h2>" + table(head, rows)


def _boards(outcomes) -> str:
    head = ["", "镇（街道）", "季度", "在办", "超时在办", "走访超期户（前200）", *[label for _, label in RATES]]
    rows = [[o.label, b["name"], b["quarter"], b["open_total"], b["open_overdue"], b["overdue_visits"],
             *[pct(b.get(k)) for k, _ in RATES]]
            for o in outcomes for b in o.series.get("boards", {}).values()]
    return "<h2>年末的督办看板（本季度）</h2><p>与镇干部在 /board 页面上看到的一致（GET …/board）。</p>" + table(head, rows)


def _closing(outcomes) -> str:
    rows = [[f"{label}（{k}）", *[o.audit.get(k) for o in outcomes]] for k, label in CLOSING]
    rows += [["运行用时（秒）", *[o.runtime_s for o in outcomes]], ["内存峰值（MB，进程常驻）", *[o.peak_mb for o in outcomes]],
             ["HTTP 请求", *[o.counts.get("requests") for o in outcomes]], ["步进次数", *[o.counts.get("steps") for o in outcomes]]]
    return "<h2>收尾核对：不丢、不重</h2>" + table(["", *[o.label for o in outcomes]], rows)
