"""The generated city as the files a township and a city really hand over: the roster workbook (one
row per household, plus the village committees' and township staff's contacts sheet) and the
responsibility matrix — imported through the normal import, as a user would."""
from __future__ import annotations

import csv
import io

from openpyxl import Workbook

from .city import City, Township

ROSTER_HEADER = ["村(社区)", "片区", "片长", "片长电话", "村民小组", "组长", "组长电话", "邻", "邻长", "邻长电话",
                 "户主", "地址", "联系电话", "重点户"]
CONTACTS_HEADER = ["村(社区)", "姓名", "职务", "电话", "顺序"]
CONTACTS_SHEET = "村委会及镇干部"


def roster_rows(town: Township) -> list[list[str]]:
    leads = {p.path: (p.lead or "", p.phone or "") for p in town.posts}
    rows = []
    for h in town.households:
        village, area, group, hood = h.path
        rows.append([village, area, *leads[(village, area)], group, *leads[(village, area, group)],
                     hood, *leads[h.path], h.head, h.address, h.phone, "是" if h.key else "否"])
    return rows


def roster_xlsx(town: Township) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("花名册")
    sheet.append(ROSTER_HEADER)
    for row in roster_rows(town):
        sheet.append(row)
    contacts = book.create_sheet(CONTACTS_SHEET)
    contacts.append(CONTACTS_HEADER)
    for c in town.contacts:
        contacts.append([c[k] for k in CONTACTS_HEADER])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def department_id(city: City, short: str) -> str:
    return f"{city.code}-{short}"


def matrix_csv(city: City) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["类别", "镇(街道)代码", "牵头部门", "配合部门", "备注"])
    for category, short in city.matrix.items():
        writer.writerow([category, "", department_id(city, short), "", "模拟"])
    return out.getvalue().encode("utf-8")
