"""What pages show people, as plain text: times in the local (China) time, without the web framework."""
from __future__ import annotations

from datetime import datetime

from shared.clock import parse_iso
from shared.domain.localtime import local_zone


def local_time(value: str | datetime | None, with_year: bool = False) -> str:
    """``2026-11-02T01:00:00+00:00`` → ``11月2日 09:00`` in the local zone (China time); '' for None."""
    if not value:
        return ""
    at = parse_iso(value) if isinstance(value, str) else value
    at = at.astimezone(local_zone())
    text = f"{at.month}月{at.day}日 {at:%H:%M}"
    return f"{at.year}年{text}" if with_year else text


def local_iso(value: str | datetime | None) -> str:
    """The machine-readable form of the same moment, for ``<time datetime=…>``."""
    if not value:
        return ""
    at = parse_iso(value) if isinstance(value, str) else value
    return at.astimezone(local_zone()).isoformat(timespec="minutes")


# The header of every page (三长制 · <site>) names its audience, not the service that serves it: a page
# a lead or staff member uses says 诉求办理 even when intake serves it (回电, 代办, a refused upload).
SITES = {"resident": "群众服务", "handling": "诉求办理", "department": "部门工作台"}

# Why intake kept none of the photos a lead (or staff member) sent from dispatch's case page: intake
# answers with the key (a query flag back to the case page, or JSON for the page's script), dispatch's
# page says it next to the photo field. Both services read this one table.
PHOTO_PROBLEMS = {
    "missing": "请先选择要上传的照片",
    "type": "只能上传照片（JPEG、PNG或WebP格式）",
    "size": "每张照片不能超过5MB，请重新拍摄或选择",
    "count": "每条诉求最多9张照片，已经够了",
    "expired": "页面已过期，请刷新后重新上传",
}
