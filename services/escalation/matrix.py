"""The responsibility matrix (责任清单): which department leads a category, and which co-handle it.

One document per city holds all its rows, so an import replaces the whole matrix in one write. A row
names a category and optionally a township (a 9-digit code of the city); a township's own row beats
the city-wide one. Every category can reach the department level (any case left unsolved climbs the
whole chain), so a complete matrix has a city-wide lead for each of them; a spreadsheet that misses
one is refused with the missing categories named.

Spreadsheets: .xlsx (first sheet) or CSV in UTF-8 or GBK, header in row 1:

| 类别 | 镇(街道)代码 | 牵头部门 | 配合部门 | 备注 |
|---|---|---|---|---|
| 住房物业 | | 市住房和城乡建设局 | 市自然资源局、市消防救援大队 | |
| road | 430382102 | 市交通运输局 | 市公安局交警大队 | 该镇的国道段 |

类别 is the code or its Chinese name; 镇(街道)代码 empty means city-wide; departments by name or id,
co-handling ones separated by 、 , ， ; ； or spaces. The sheet may be kept as offices keep it
(shared/domain/sheet_table.py): a title row above the header, merged cells (a 牵头部门 merged over
several categories), 合计/备注 rows at the end. A bad file is refused whole, every error with its row
number and cell as the sheet shows them. ``read_matrix`` also returns what the reader did (notices);
``matrix_changes`` is the dry run's comparison with the stored matrix.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

from shared.clock import Clock, iso
from shared.domain.categories import CATEGORIES
from shared.domain.sheet_table import Table, read_table
from shared.domain.spreadsheet import ImportRejected, SpreadsheetError, cell_text
from shared.storage import Store, VersionConflict

MAX_ROWS = 5000
MAX_ERRORS = 200
CATEGORY_BY_NAME = {name: code for code, name in CATEGORIES.items()}
# Every category may climb to the departments: a case no level could solve is referred whatever it is.
REACHES_DEPARTMENT = tuple(CATEGORIES)

HEADERS = {
    "category": ("类别", "问题类别", "诉求类别", "category"),
    "township": ("镇(街道)代码", "镇街代码", "乡镇(街道)代码", "township"),
    "lead": ("牵头部门", "牵头单位", "lead"),
    "co": ("配合部门", "配合单位", "协办部门", "co"),
    "remark": ("备注", "说明", "remark"),
}
REQUIRED_HEADERS = ("category", "lead")
_SEPARATORS = re.compile(r"[,，、;；/\s]+")


class MatrixError(ImportRejected):
    """The whole file (or row) is refused; ``errors`` holds {"row", "column", "message"} dicts."""

    def __init__(self, errors: list[dict]):
        super().__init__(f"责任清单有误，共{len(errors)}处", errors)


@dataclass(frozen=True)
class Plan:
    lead: dict
    co: tuple[dict, ...]
    row: dict


def category_label(code: str) -> str:
    return f"{CATEGORIES.get(code, code)}({code})"


def _fold(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def missing_categories(rows: list[dict]) -> list[str]:
    """Categories without a city-wide lead, in CATEGORIES order."""
    covered = {r["category"] for r in rows if not r.get("township") and r.get("lead")}
    return [c for c in REACHES_DEPARTMENT if c not in covered]


class MatrixRepository:
    def __init__(self, store: Store, clock: Clock):
        self.matrices = store.collection("matrices")
        self.clock = clock

    def get(self, city: str) -> dict:
        return self.matrices.get(city) or {"_id": city, "city": city, "rows": [], "updated_at": None,
                                           "updated_by": None, "source": None}

    def plan(self, city: str, township: str, category: str, department: Callable[[str], dict | None]) -> Plan | None:
        """Lead and co-handling departments for a case; None when no active lead is named."""
        rows = self.get(city)["rows"]
        own = next((r for r in rows if r["category"] == category and r.get("township") == township), None)
        row = own or next((r for r in rows if r["category"] == category and not r.get("township")), None)
        if row is None:
            return None
        lead = department(row["lead"])
        if lead is None or not lead.get("active", True):
            return None
        co = []
        for dept_id in row.get("co", []):
            dept = department(dept_id)
            if dept is not None and dept.get("active", True) and dept["_id"] != lead["_id"]:
                co.append(dept)
        return Plan(lead=lead, co=tuple(co), row=row)

    def replace(self, city: str, rows: list[dict], actor: str, source: str) -> dict:
        current = self.matrices.get(city)
        doc = {"_id": city, "city": city, "rows": sorted(rows, key=_row_order), "updated_at": iso(self.clock.now()),
               "updated_by": actor, "source": source}
        if current is None:
            self.matrices.upsert(doc)
            return self.get(city)
        return self.matrices.replace(doc, current["version"])

    def edit(self, city: str, change: Callable[[list[dict]], list[dict]], actor: str) -> dict:
        for _ in range(20):
            current = self.get(city)
            rows = change([dict(r) for r in current["rows"]])
            try:
                if current.get("version") is None:
                    return self.replace(city, rows, actor, "api")
                doc = {**current, "rows": sorted(rows, key=_row_order), "updated_at": iso(self.clock.now()),
                       "updated_by": actor, "source": "api"}
                return self.matrices.replace(doc, current["version"])
            except VersionConflict:
                continue
        raise VersionConflict(f"matrix {city} kept changing")

    def put_row(self, city: str, row: dict, actor: str) -> dict:
        def change(rows):
            kept = [r for r in rows if (r["category"], r.get("township")) != (row["category"], row.get("township"))]
            return kept + [row]
        return self.edit(city, change, actor)

    def delete_row(self, city: str, category: str, township: str | None, actor: str) -> dict:
        def change(rows):
            kept = [r for r in rows if (r["category"], r.get("township")) != (category, township)]
            if len(kept) == len(rows):
                raise LookupError(category)
            return kept
        return self.edit(city, change, actor)


def _row_order(row: dict) -> tuple:
    order = list(CATEGORIES)
    return (order.index(row["category"]) if row["category"] in order else len(order), row.get("township") or "")


# -- validation ------------------------------------------------------------------------------------

def check_row(city: str, category: str, township: str | None, lead: str, co: list[str],
              lookup: Callable[[str], dict | None]) -> tuple[dict, list[tuple[str, str]]]:
    """A row with department ids resolved, and its errors as (column, message) pairs."""
    errors: list[tuple[str, str]] = []
    code = category if category in CATEGORIES else CATEGORY_BY_NAME.get(category)
    if code is None:
        errors.append(("类别", f"未知类别「{category}」，可选：" + "、".join(CATEGORIES.values())))
    if township:
        if not re.fullmatch(r"\d{9}", township):
            errors.append(("镇(街道)代码", f"「{township}」不是9位镇(街道)代码"))
        elif not township.startswith(city):
            errors.append(("镇(街道)代码", f"镇(街道) {township} 不属于本市({city})"))
    lead_doc = lookup(lead) if lead else None
    if not lead:
        errors.append(("牵头部门", "牵头部门不能为空"))
    elif lead_doc is None:
        errors.append(("牵头部门", f"未知部门「{lead}」（须先在本市登记，且未停用）"))
    co_ids: list[str] = []
    for name in co:
        doc = lookup(name)
        if doc is None:
            errors.append(("配合部门", f"未知部门「{name}」（须先在本市登记，且未停用）"))
        elif lead_doc is not None and doc["_id"] == lead_doc["_id"]:
            errors.append(("配合部门", f"「{name}」已是牵头部门，不能同时为配合部门"))
        elif doc["_id"] not in co_ids:
            co_ids.append(doc["_id"])
    row = {"category": code, "township": township or None, "lead": lead_doc["_id"] if lead_doc else None,
           "co": co_ids}
    return row, errors


def split_departments(text: str) -> list[str]:
    return [part for part in _SEPARATORS.split(text.strip()) if part]


def parse_matrix(city: str, data: bytes, filename: str, lookup: Callable[[str], dict | None]) -> list[dict]:
    """Reads and validates a whole spreadsheet; raises MatrixError listing every problem by row."""
    return read_matrix(city, data, filename, lookup)[0]


def read_matrix(city: str, data: bytes, filename: str,
                lookup: Callable[[str], dict | None]) -> tuple[list[dict], list[dict]]:
    """The rows, and the reader's notices (header row, rows set aside, hidden rows and columns)."""
    if not data:
        raise MatrixError([_error(None, None, "文件为空")])
    try:
        table = read_table(data, filename, [n for names in HEADERS.values() for n in names], key=_fold)
        columns = _matrix_columns(table)
        rows, errors = _matrix_rows(city, table, columns, lookup)
    except SpreadsheetError as exc:
        raise MatrixError([_error(None, None, str(exc))]) from None
    if not errors:
        missing = missing_categories(rows)
        if missing:
            errors.append(_error(None, "类别", "以下类别缺少全市通用的牵头部门：" + "、".join(category_label(c) for c in missing)))
    if errors:
        raise MatrixError(sorted(errors, key=lambda e: (e["row"] is None, e["row"] or 0))[:MAX_ERRORS])
    return rows, table.notices()


def _error(row: int | None, column: str | None, message: str, cell: str | None = None) -> dict:
    return {"row": row, "column": column, "cell": cell, "message": message}


def _matrix_columns(table: Table) -> dict[str, int]:
    if table.header_row is None:
        raise MatrixError([_error(1, None, "文件为空")])
    at = table.header_row
    errors, columns = [], {}
    for index, raw in enumerate(table.header):
        text = _fold(raw)
        if not text:
            continue
        field = next((f for f, names in HEADERS.items() if text in {_fold(n) for n in names}), None)
        if field is None:
            errors.append(_error(at, text, f"未知列「{text}」，可用列：类别、镇(街道)代码、牵头部门、配合部门、备注",
                                 table.cell(at, index)))
        elif field in columns:
            errors.append(_error(at, text, f"列「{text}」重复", table.cell(at, index)))
        else:
            columns[field] = index
    where = f"（按第{at}行作为表头读取）" if at != 1 or columns else ""
    for field in REQUIRED_HEADERS:
        if field not in columns:
            errors.append(_error(at, HEADERS[field][0], f"缺少必填列「{HEADERS[field][0]}」{where}"))
    if errors:
        raise MatrixError(errors[:MAX_ERRORS])
    return columns


def _matrix_rows(city: str, table: Table, columns: dict[str, int],
                 lookup: Callable[[str], dict | None]) -> tuple[list[dict], list[dict]]:
    letters = {HEADERS[f][0]: i for f, i in columns.items()}
    rows: list[dict] = []
    errors: list[dict] = []
    first_seen: dict[tuple, int] = {}
    for count, (number, cells) in enumerate(table.rows()):
        if count >= MAX_ROWS:
            raise MatrixError([_error(None, None, f"文件超过{MAX_ROWS}行")])
        values = {f: cell_text(cells[i]) if i < len(cells) else "" for f, i in columns.items()}
        if not any(values.get(f) for f in ("category", "township", "lead", "co")):
            continue  # blank line
        township = _fold(values.get("township", "")) or None
        row, problems = check_row(city, _fold(values["category"]), township, values["lead"].strip(),
                                  split_departments(values.get("co", "")), lookup)
        for column, message in problems:
            errors.append(_error(number, column, message, table.cell(number, letters.get(column))))
        if problems:
            continue
        key = (row["category"], row["township"])
        if key in first_seen:
            scope = f"镇(街道) {row['township']}" if row["township"] else "全市"
            errors.append(_error(number, "类别", f"{category_label(row['category'])}在{scope}已由第{first_seen[key]}行指定",
                                 table.cell(number, letters.get("类别"))))
            continue
        first_seen[key] = number
        rows.append(row)
    return rows, errors


# -- the dry run -----------------------------------------------------------------------------------

def matrix_changes(current: list[dict], new: list[dict], name: Callable[[str], str]) -> dict:
    """Rows added, changed (lead or co-handlers) and removed, keyed by category and township;
    departments by name."""
    def key(row):
        return row["category"], row.get("township")

    def view(row):
        return {"category": row["category"], "category_name": CATEGORIES.get(row["category"], row["category"]),
                "township": row.get("township"), "lead": name(row["lead"]) if row.get("lead") else None,
                "co": [name(c) for c in row.get("co", [])]}

    def holders(row):
        return row.get("lead"), list(row.get("co", []))

    before = {key(r): r for r in current}
    after = {key(r): r for r in new}
    changed = [{**view(after[k]), "before": view(before[k])} for k in after
               if k in before and holders(before[k]) != holders(after[k])]
    return {"added": [view(after[k]) for k in after if k not in before], "changed": changed,
            "removed": [view(before[k]) for k in before if k not in after]}
