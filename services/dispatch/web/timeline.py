"""A case's timeline entry in plain Chinese, for the lead's and staff's pages."""
from __future__ import annotations

from shared.domain.levels import POST_TITLES

from ..case_photos import resolved_with

WHAT = {"reported": "群众反映", "assigned": "派单", "accepted": "接单", "progress": "办理进展", "resolved": "办结",
        "escalated": "上交上一级", "breached": "超时", "warned": "即将超时提醒", "supervised": "镇(街道)督办",
        "supervision_answered": "答复督办", "reassigned": "改派", "reopened": "群众不满意，重新办理", "paused": "挂起",
        "resumed": "恢复办理", "referred": "转市直部门", "merged": "合并", "linked": "关联同类诉求",
        "department_returned": "部门退回", "department_part": "配合部门意见", "signed_off": "部门销号", "supplemented": "群众补充", "rated": "群众评价",
        "recategorised": "修改分类"}

DEPARTMENT_ENTRIES = ("department_returned", "department_part")  # which department: the entry's own name


def timeline_items(case: dict) -> list[dict]:
    """The case's history, newest first; a 办结 says how many photos the holder sent with it."""
    photos = resolved_with(case)
    items = [{"at": e["at"], "type": e["type"], "text": timeline_text(e, photos.get(i, 0))}
             for i, e in enumerate(case.get("timeline") or [])]
    return items[::-1]


def timeline_text(entry: dict, photos: int = 0) -> str:
    text = WHAT.get(entry.get("type"), "办理状态更新")
    if photos:
        text += f"，附照片{photos}张"
    if entry.get("department_name") and entry.get("type") in DEPARTMENT_ENTRIES:
        text += f"：{entry['department_name']}"
    if entry.get("unit_name") and entry.get("type") in ("assigned", "escalated", "reassigned", "reopened"):
        text += f"：{entry['unit_name']}{POST_TITLES.get(entry.get('level'), '')}"
        if entry.get("lead_name"):
            text += f" {entry['lead_name']}"
    detail = entry.get("note") or entry.get("reason")
    return f"{text}（{detail}）" if detail else text
