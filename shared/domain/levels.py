"""The levels of the chain (邻 → 组 → 片 → 村 → 镇, then a city department) and their names.

Two maps, never to be confused: ``UNIT_NAMES`` names the unit (邻, 组, 片 …: "the case is at the
邻"), ``POST_TITLES`` names the post holding it (邻长, 组长, 片长 …: "the 邻长 accepted it")."""
from __future__ import annotations

# The chain as a case climbs it, bottom first; departments come after the township.
CHAIN_LEVELS: tuple[str, ...] = ("neighbourhood", "group", "area", "village", "township")
DEPARTMENT = "department"
# The roster's tree, top first: the levels a township's spreadsheet names.
ROSTER_LEVELS: tuple[str, ...] = ("village", "area", "group", "neighbourhood")
# Posts one named person holds (三长); the levels above are bodies that are never vacant.
LEAD_LEVELS: tuple[str, ...] = ("neighbourhood", "group", "area")
COLLECTIVE_LEVELS: tuple[str, ...] = ("village", "township")

UNIT_NAMES: dict[str, str] = {"neighbourhood": "邻", "group": "组", "area": "片", "village": "村(社区)",
                              "township": "镇(街道)", "department": "市直部门"}
POST_TITLES: dict[str, str] = {"neighbourhood": "邻长", "group": "组长", "area": "片长",
                               "village": "村(社区)两委", "township": "镇(街道)工作人员",
                               "department": "市直部门"}


def unit_name(level: str | None) -> str:
    """邻/组/片…; an unknown level is shown as itself."""
    return UNIT_NAMES.get(level, level or "")


def post_title(level: str | None) -> str:
    """邻长/组长/片长…; '' for an unknown level (a message reads better without it)."""
    return POST_TITLES.get(level, "")
