"""Chinese message templates, one per (event type, recipient role). Variables in {braces}."""
from __future__ import annotations

from services.dispatch.sla import CATEGORIES

LEVEL_TITLES = {"neighbourhood": "邻长", "group": "组长", "area": "片长", "village": "村(社区)",
                "township": "镇(街道)", "department": "市直部门"}

TEMPLATES: dict[tuple[str, str], str] = {
    ("case.assigned", "assignee"): "【三长制】{name}您好，{unit_name}有一件{category_name}诉求待您接单（查询码{tracking_no}）：{summary}。请于{due_local}前办结。",
    ("case.escalated", "assignee"): "【三长制】{name}您好，一件{category_name}诉求已上交给您（查询码{tracking_no}），原因：{reason}。请尽快接单。",
    ("case.accepted", "resident"): "【三长制】您反映的问题（查询码{tracking_no}）已由{unit_name}{level_title}接单办理。",
    ("case.resolved", "resident"): "【三长制】您反映的问题（查询码{tracking_no}）已办结，请对办理结果评价：满意/基本满意/不满意。",
}


def render(event_type: str, role: str, params: dict, overrides: dict | None = None) -> str | None:
    template = (overrides or {}).get(f"{event_type}:{role}") or TEMPLATES.get((event_type, role))
    if template is None:
        return None
    return template.format_map(_Defaulting(params))


class _Defaulting(dict):
    """A missing variable renders empty rather than failing a whole notification."""

    def __missing__(self, key):
        return ""


def case_params(payload: dict, due_local: str = "") -> dict:
    a = payload["assignee"]
    return {
        "tracking_no": payload["tracking_no"], "category_name": CATEGORIES.get(payload["category"], payload["category"]),
        "summary": (payload.get("summary") or "")[:30], "unit_name": a.get("unit_name") or "",
        "level_title": LEVEL_TITLES.get(a["level"], ""), "name": a.get("lead_name") or "",
        "reason": payload.get("reason") or "", "due_local": due_local,
    }
