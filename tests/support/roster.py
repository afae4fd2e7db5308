"""A valid roster row and the roster's header, shared by the roster tests (no tests here)."""
from __future__ import annotations

TOWNSHIP = "430382100"
HEADER = ["村(社区)", "片区", "片长", "片长电话", "村民小组", "组长", "组长电话", "邻", "邻长", "邻长电话",
          "户主", "地址", "联系电话", "重点户", "片长企业微信", "组长企业微信", "邻长企业微信"]
AREA_LEAD = {"片长": "毛建华", "片长电话": "13873100001", "片长企业微信": "maojianhua"}
GROUP_LEAD = {"组长": "彭立新", "组长电话": "13873100002", "组长企业微信": ""}
NEIGHBOURHOOD_LEAD = {"邻长": "周桂香", "邻长电话": "13873100003", "邻长企业微信": ""}


def household(head: str, number: int, **cells) -> dict:
    """A valid row of 韶山村/一片/一组/第1邻; keyword cells (by header) override."""
    row = {"村(社区)": "韶山村", "片区": "一片", **AREA_LEAD, "村民小组": "一组", **GROUP_LEAD,
           "邻": "第1邻", **NEIGHBOURHOOD_LEAD, "户主": head, "地址": f"韶山村一组{number}号",
           "联系电话": "", "重点户": ""}
    row.update(cells)
    return row
