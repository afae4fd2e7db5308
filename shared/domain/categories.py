"""What a resident can report about (categories) and how hard a case is (tiers of the 0211 rule).

The default tier of each category lives with the SLA policy (services/dispatch/sla.py), which a
township may change; the lists themselves are fixed and shared by every service."""
from __future__ import annotations

# The 0211 rule: instant (bot, 0 s), general (2 days), difficult (1 week), complex (progress monthly).
TIERS: tuple[str, ...] = ("instant", "general", "difficult", "complex")

CATEGORIES: dict[str, str] = {
    "environment": "环境卫生",
    "road": "道路交通",
    "water": "供水排水",
    "power": "供电",
    "dispute": "矛盾纠纷",
    "hazard": "安全隐患",
    "housing": "住房物业",
    "policy": "政策咨询",
    "social": "社会保障",
    "other": "其他",
}


def category_name(code: str) -> str:
    """The Chinese name people read; an unknown code is shown as itself rather than hidden."""
    return CATEGORIES.get(code, code)
