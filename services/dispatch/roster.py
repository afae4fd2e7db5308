"""Township roster importer: one spreadsheet row per household, read into the 村→片→组→邻→户 tree.

Pure: bytes in, an `Org` or a `RosterError` out. A bad file is rejected whole, with every error
(up to MAX_ERRORS) numbered as the spreadsheet shows its rows and columns ("cell": "C5"). The sheet
is read as offices keep it (shared/domain/sheet_table.py): the header row is found among the first
rows, merged 村/片/组 cells give every household their value, trailing 合计/备注 rows are set aside;
what the reader did is returned as notices (`load_roster`).

Ids are derived from content (township and the names on the path), so importing the same or an
updated file again names the same units and households, and storage updates instead of duplicating.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

from shared.domain import phones
from shared.domain.addresses import normalise_address
from shared.domain.levels import LEAD_LEVELS, POST_TITLES
from shared.domain.levels import ROSTER_LEVELS as LEVELS
from shared.domain.sheet_table import Table, read_table
from shared.domain.spreadsheet import ImportRejected, SpreadsheetError, cell_text

MAX_ROWS = 100_000
MAX_ERRORS = 200

# Column header (as folded by _header_key) for each RosterRow field. The level fields share the
# level's name, so a row's path is `getattr(row, level) for level in LEVELS`.
HEADERS = {
    "village": "村(社区)",
    "area": "片区",
    "area_lead": "片长",
    "area_lead_phone": "片长电话",
    "group": "村民小组",
    "group_lead": "组长",
    "group_lead_phone": "组长电话",
    "neighbourhood": "邻",
    "neighbourhood_lead": "邻长",
    "neighbourhood_lead_phone": "邻长电话",
    "head": "户主",
    "address": "地址",
    "phone": "联系电话",
    "key_household": "重点户",
    "area_lead_wecom": "片长企业微信",
    "group_lead_wecom": "组长企业微信",
    "neighbourhood_lead_wecom": "邻长企业微信",
}
OPTIONAL_COLUMNS = ("key_household", "area_lead_wecom", "group_lead_wecom", "neighbourhood_lead_wecom")
REQUIRED_COLUMNS = tuple(f for f in HEADERS if f not in OPTIONAL_COLUMNS)
REQUIRED_CELLS = (*LEVELS, "head", "address")
LEVEL_WORDS = {"village": "村(社区)", "area": "片区", "group": "村民小组", "neighbourhood": "邻"}


class _Post(NamedTuple):
    level: str
    title: str
    name: str
    phone: str
    wecom: str


# Top first, as the columns run (片长, 组长, 邻长).
POSTS = {
    level: _Post(level, POST_TITLES[level], f"{level}_lead", f"{level}_lead_phone", f"{level}_lead_wecom")
    for level in reversed(LEAD_LEVELS)
}

_KEY_HOUSEHOLD = {"": False, "否": False, "N": False, "0": False, "是": True, "Y": True, "1": True}
# WeCom's own rule for a userid: letters, digits and _-@., starting with a letter or digit.
_WECOM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-@.]{0,63}")
# A long number Excel shows as 1.38E+10: saved so (CSV), its last digits are gone for good.
_SCIENTIFIC = re.compile(r"([0-9])(?:\.([0-9]+))?[Ee]\+?([0-9]+)")
SCIENTIFIC_PHONE = ("电话号码被Excel存成了科学计数法（如1.38E+10），后几位已丢失；"
                    "请把该列设为“文本”格式，重新填写完整号码")
MARKER_ROW = "此行像是合计或备注行，请删除，或移到表格最后"


# -- data shapes ----------------------------------------------------------------------------------
# Phone fields stay out of repr, so a logged object or a failing assertion never prints a number.

@dataclass(frozen=True)
class RosterRow:
    """One household row as read from the file; text cells are '' when empty."""
    row: int
    village: str
    area: str
    area_lead: str
    area_lead_phone: str = field(repr=False)
    group: str
    group_lead: str
    group_lead_phone: str = field(repr=False)
    neighbourhood: str
    neighbourhood_lead: str
    neighbourhood_lead_phone: str = field(repr=False)
    head: str
    address: str
    phone: str = field(default="", repr=False)
    key_household: bool = False
    area_lead_wecom: str = ""
    group_lead_wecom: str = ""
    neighbourhood_lead_wecom: str = ""


TEXT_FIELDS = tuple(f.name for f in fields(RosterRow) if f.name not in ("row", "key_household"))


@dataclass(frozen=True)
class Lead:
    name: str
    phone: str = field(repr=False)
    wecom_id: str | None = None


@dataclass(frozen=True)
class Unit:
    id: str
    level: str
    name: str
    parent_id: str | None
    township: str
    lead: Lead | None = None


@dataclass(frozen=True)
class Household:
    id: str
    township: str
    neighbourhood_id: str
    head: str
    address: str
    phone: str | None = field(repr=False)
    key_household: bool


@dataclass(frozen=True)
class Org:
    township: str
    units: dict[str, Unit] = field(default_factory=dict)
    households: list[Household] = field(default_factory=list)

    def units_at(self, level: str) -> list[Unit]:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}")
        return [u for u in self.units.values() if u.level == level]

    def chain(self, neighbourhood_id: str) -> list[Unit]:
        """The neighbourhood and the units above it: neighbourhood, group, area, village."""
        unit = self.units[neighbourhood_id]
        if unit.level != "neighbourhood":
            raise ValueError(f"{neighbourhood_id} is a {unit.level}, not a neighbourhood")
        chain = [unit]
        while chain[-1].parent_id is not None:
            chain.append(self.units[chain[-1].parent_id])
        return chain


class RosterError(ImportRejected):
    """The whole file is refused; `errors` holds {"row", "column", "message"} dicts, sorted by row."""

    def __init__(self, errors: list[dict], truncated: bool = False):
        self.truncated = truncated
        more = f"（错误过多，只列出前{MAX_ERRORS}处）" if truncated else ""
        super().__init__(f"花名册有误，列出{len(errors)}处错误{more}", errors)


class _Errors:
    """Counts every error but keeps only the first MAX_ERRORS: a file of bad rows must not cost a dict per cell.
    Once the header is mapped (`locate`), each error names its cell as Excel does ("cell": "C5"), and
    one on a cell filled from a merged range says so."""

    def __init__(self):
        self.items: list[dict] = []
        self.count = 0
        self.indexes: dict[str, int] = {}  # column header → 0-based index in the sheet
        self.table: Table | None = None

    def locate(self, table: Table, columns: dict[str, int]) -> None:
        self.table = table
        self.indexes = {HEADERS[f]: i for f, i in columns.items()}

    def add(self, row: int, column: str | None, message: str, cell: str | None = None) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            index = self.indexes.get(column) if column else None
            cell = cell or (self.table.cell(row, index) if self.table and row else None)
            origin = self.table.merged_from(row, index) if self.table and row else None
            if origin:
                message += f"（此格在Excel中与{origin}合并，取的是{origin}的内容）"
            self.items.append({"row": row, "column": column, "cell": cell, "message": message})

    def merge(self, other: _Errors) -> None:
        # Each side holds its own first errors by row, so sorting the union and cutting keeps the first overall.
        self.items = sorted(self.items + other.items, key=lambda e: e["row"])[:MAX_ERRORS]
        self.count += other.count

    def raise_if_any(self) -> None:
        if self.count:
            raise RosterError(sorted(self.items, key=lambda e: e["row"]), truncated=self.count > len(self.items))


class _FileError(SpreadsheetError):
    """The file as a whole is refused (too long); the message is for the user."""


# -- normalisation --------------------------------------------------------------------------------

def unit_id(township: str, *path: str) -> str:
    """Id of the unit at the end of `path` (village, area, group, neighbourhood names, as deep as the unit)."""
    return _content_id("u-", township, *path)


def household_id(township: str, village: str, area: str, group: str, neighbourhood: str,
                 head: str, address: str) -> str:
    return _content_id("h-", township, village, area, group, neighbourhood, head, address)


def _content_id(prefix: str, *parts: str) -> str:
    return prefix + hashlib.sha1("|".join(parts).encode("utf-8")).hexdigest()[:16]


def _check_township(township: str) -> None:
    if not (isinstance(township, str) and re.fullmatch(r"[0-9]{9}", township)):
        raise ValueError("township must be a 9-digit division code, e.g. 430382100")


# -- reading files --------------------------------------------------------------------------------

def parse_roster(data: bytes, filename: str) -> list[RosterRow]:
    """Reads the rows of an .xlsx or .csv roster, cells stripped; build_org normalises and checks them."""
    rows, errors, _ = _read(data, filename)
    errors.raise_if_any()
    return rows


def _read(data: bytes, filename: str) -> tuple[list[RosterRow], _Errors, list[dict]]:
    """Rows, errors, and the reader's notices (header moved, rows set aside, hidden rows and columns)."""
    errors = _Errors()
    if not data:
        errors.add(1, None, "文件为空")
        return [], errors, []
    try:
        table = read_table(data, filename, HEADERS.values(), key=_header_key)
        rows = _rows_from_table(table, errors)
    except SpreadsheetError as exc:
        # Whatever was collected before this is moot: the file itself is the problem.
        errors = _Errors()
        errors.add(1, None, str(exc))
        return [], errors, []
    return rows, errors, table.notices()


def _rows_from_table(table: Table, errors: _Errors) -> list[RosterRow]:
    if table.header_row is None:
        errors.add(1, None, "文件为空（或前10行都是空行，找不到表头）")
        return []
    columns = _map_header(table, errors)
    if columns is None:
        return []
    errors.locate(table, columns)
    rows = []
    for number, cells in table.rows():
        values = {f: cell_text(cells[i]) if i < len(cells) else "" for f, i in columns.items()}
        if not any(values.values()):
            continue  # Excel leaves formatted empty rows behind; they are not households
        if number in table.marker_rows:
            errors.add(number, None, MARKER_ROW)
            continue
        if len(rows) == MAX_ROWS:
            raise _FileError(f"花名册超过{MAX_ROWS}行的上限，请按村（社区）拆分后分别导入")
        rows.append(_row(number, values, errors))
    if not rows and not errors.count:
        errors.add(table.header_row + 1, None, "文件没有数据行")
    return rows


def _map_header(table: Table, errors: _Errors) -> dict[str, int] | None:
    by_key = {_header_key(h): f for f, h in HEADERS.items()}
    columns: dict[str, int] = {}
    before = errors.count
    at = table.header_row
    for index, text in enumerate(table.header):
        name = by_key.get(_header_key(text))
        if name is None:
            continue  # extra columns (备注 and the like) are the township's business
        if name in columns:
            errors.add(at, HEADERS[name], f"列「{HEADERS[name]}」重复出现", table.cell(at, index))
        columns[name] = index
    where = f"（按第{at}行作为表头读取；表头须是一行，每列一个列名）" if columns else f"（第{at}行不像表头：前几行中没有找到列名）"
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            errors.add(at, HEADERS[name], f"缺少必填列「{HEADERS[name]}」{where}")
    return columns if errors.count == before else None


def _header_key(text: str) -> str:
    # Headers often carry line breaks (Alt+Enter) or padding; 村（社区） folds to 村(社区).
    return "".join(normalise_address(text).split())


def _row(number: int, values: dict[str, str], errors: _Errors) -> RosterRow:
    flag = values.pop("key_household", "")
    key = _KEY_HOUSEHOLD.get(normalise_address(flag).upper())
    if key is None:
        errors.add(number, HEADERS["key_household"], "重点户只能填“是”或“否”（也可填Y/N、1/0或留空）")
    return RosterRow(row=number, key_household=bool(key), **values)


# -- building the tree ----------------------------------------------------------------------------

def build_org(township: str, rows: list[RosterRow]) -> Org:
    """Checks every row and the rules across rows, then builds the tree; raises RosterError."""
    org, errors = _build(township, rows)
    errors.raise_if_any()
    return org


def import_roster(township: str, data: bytes, filename: str) -> Org:
    return load_roster(township, data, filename).org


class Loaded(NamedTuple):
    org: Org
    notices: list[dict]  # {"row", "column", "message"}: what the reader did, reported but not errors


def load_roster(township: str, data: bytes, filename: str) -> Loaded:
    _check_township(township)
    rows, errors, notices = _read(data, filename)
    if not rows:
        errors.raise_if_any()  # an unreadable or empty file has nothing more to check
    # Rows that were read are checked even when the file already has errors, so one upload shows them all.
    org, build_errors = _build(township, rows, errors.table, errors.indexes)
    errors.merge(build_errors)
    errors.raise_if_any()
    return Loaded(org, notices)


@dataclass
class _Draft:
    """A unit while rows are still arriving: its lead is the first one any row names."""
    level: str
    name: str
    parent_id: str | None
    lead: Lead | None = None
    lead_row: int = 0
    wecom_row: int = 0


class _Builder:
    def __init__(self, township: str):
        self.township = township
        self.errors = _Errors()
        self.drafts: dict[str, _Draft] = {}
        # (level, name, lead name, lead phone) → (parent id, row): the same named post with the same
        # holder is one unit, so finding it under a second parent means a row has a wrong parent.
        self.placements: dict[tuple, tuple[str | None, int]] = {}
        self.household_rows: dict[str, int] = {}
        self.households: list[Household] = []

    def add(self, row: RosterRow) -> None:
        parent_id = None
        path: list[str] = []
        for level in LEVELS:
            path.append(getattr(row, level))
            uid = unit_id(self.township, *path)
            self._place(uid, level, path[-1], parent_id, _lead_of(row, level), row.row)
            parent_id = uid
        self._add_household(row, path, parent_id)

    def _place(self, uid: str, level: str, name: str, parent_id: str | None, lead: Lead | None, row: int) -> None:
        draft = self.drafts.setdefault(uid, _Draft(level, name, parent_id))
        if lead is None:
            return  # a vacancy, or a row that leaves the lead to the rows above it
        self._check_placement(level, name, parent_id, lead, row)
        post = POSTS[level]
        if draft.lead is None:
            draft.lead, draft.lead_row, draft.wecom_row = lead, row, row
        elif draft.lead.name != lead.name:
            self.errors.add(row, HEADERS[post.name],
                            f"{LEVEL_WORDS[level]}「{name}」的{post.title}与第{draft.lead_row}行不一致"
                            f"（「{draft.lead.name}」和「{lead.name}」），同一岗位只能有一位{post.title}")
        elif draft.lead.phone != lead.phone:
            self.errors.add(row, HEADERS[post.phone],
                            f"{post.title}「{lead.name}」的电话与第{draft.lead_row}行不一致")
        elif lead.wecom_id is None or lead.wecom_id == draft.lead.wecom_id:
            pass  # the WeCom id may be given on one row of the post and left blank on the others
        elif draft.lead.wecom_id is None:
            draft.lead, draft.wecom_row = replace(draft.lead, wecom_id=lead.wecom_id), row
        else:
            self.errors.add(row, HEADERS[post.wecom],
                            f"{post.title}「{lead.name}」的企业微信账号与第{draft.wecom_row}行不一致")

    def _check_placement(self, level: str, name: str, parent_id: str | None, lead: Lead, row: int) -> None:
        first_parent, first_row = self.placements.setdefault((level, name, lead.name, lead.phone), (parent_id, row))
        if first_parent == parent_id:
            return
        parent_level = LEVELS[LEVELS.index(level) - 1]
        self.errors.add(row, HEADERS[parent_level],
                        f"{LEVEL_WORDS[level]}「{name}」（{POSTS[level].title}{lead.name}）在第{first_row}行属于"
                        f"「{self._label(first_parent)}」，这里却属于「{self._label(parent_id)}」；"
                        f"同一{LEVEL_WORDS[level]}不能属于两个{LEVEL_WORDS[parent_level]}")

    def _label(self, uid: str | None) -> str:
        names = []
        while uid is not None:
            names.append(self.drafts[uid].name)
            uid = self.drafts[uid].parent_id
        return "/".join(reversed(names))

    def _add_household(self, row: RosterRow, path: list[str], neighbourhood_id: str) -> None:
        hid = household_id(self.township, *path, row.head, row.address)
        first_row = self.household_rows.setdefault(hid, row.row)
        if first_row != row.row:
            self.errors.add(row.row, HEADERS["head"], f"与第{first_row}行是同一邻下的同一户（户主和地址相同）")
            return
        self.households.append(Household(hid, self.township, neighbourhood_id, row.head, row.address,
                                         row.phone or None, row.key_household))

    def org(self) -> Org:
        units = {uid: Unit(uid, d.level, d.name, d.parent_id, self.township, d.lead) for uid, d in self.drafts.items()}
        return Org(self.township, units, self.households)


def _build(township: str, rows: list[RosterRow], table: Table | None = None,
           indexes: dict[str, int] | None = None) -> tuple[Org, _Errors]:
    _check_township(township)
    builder = _Builder(township)
    builder.errors.table, builder.errors.indexes = table, indexes or {}
    if not rows:
        builder.errors.add(2, None, "文件没有数据行")
    for row in rows:
        checked = _check_row(row, builder.errors)
        if checked is not None:
            builder.add(checked)
    return builder.org(), builder.errors


def _lead_of(row: RosterRow, level: str) -> Lead | None:
    post = POSTS.get(level)
    if post is None or not getattr(row, post.name):
        return None  # villages have no lead column; an empty name is a vacancy
    return Lead(getattr(row, post.name), getattr(row, post.phone), getattr(row, post.wecom) or None)


def _check_row(row: RosterRow, errors: _Errors) -> RosterRow | None:
    """The row with text and phones normalised, or None after recording what is wrong with it."""
    number = row.row
    values = {f: normalise_address(getattr(row, f)) for f in TEXT_FIELDS}
    before = errors.count
    for name in REQUIRED_CELLS:
        if not values[name]:
            errors.add(number, HEADERS[name], f"「{HEADERS[name]}」不能为空")
        elif "|" in values[name]:  # "|" separates the names hashed into ids
            errors.add(number, HEADERS[name], f"「{HEADERS[name]}」不能包含“|”")
    for post in POSTS.values():
        _check_lead(number, values, post, errors)
    for name in ("phone", *(p.phone for p in POSTS.values())):
        values[name] = _checked_phone(number, name, values[name], errors)
    if errors.count != before:
        return None
    return RosterRow(row=number, key_household=row.key_household, **values)


def _checked_phone(number: int, name: str, raw: str, errors: _Errors) -> str:
    if not raw:
        return ""
    if _lost_digits(raw):
        errors.add(number, HEADERS[name], SCIENTIFIC_PHONE)
        return ""
    phone = phones.normalise(raw)
    if phone is None:
        # The value itself stays out of the message: error lists end up in logs.
        errors.add(number, HEADERS[name], "电话号码格式不正确（应为11位手机号，或带区号的固定电话如0731-55512345）")
        return ""
    return phone


def _lost_digits(raw: str) -> bool:
    """1.38E+10 stands for 13800000000 only because Excel dropped the rest: fewer digits written than
    the number has. (1.3800000001E10, all eleven written, is a whole number and accepted.)"""
    match = _SCIENTIFIC.fullmatch(raw.strip())
    if match is None:
        return False
    written = 1 + len((match.group(2) or "").rstrip("0"))
    return written < int(match.group(3)) + 1


def _check_lead(number: int, values: dict[str, str], post: _Post, errors: _Errors) -> None:
    name, phone, wecom = values[post.name], values[post.phone], values[post.wecom]
    if name and not phone:
        errors.add(number, HEADERS[post.phone], f"填了{post.title}姓名，但没有{post.title}电话")
    if not name and (phone or wecom):
        errors.add(number, HEADERS[post.name], f"填了{post.title}的电话或企业微信，但没有{post.title}姓名")
    if wecom and not _WECOM_ID.fullmatch(wecom):
        errors.add(number, HEADERS[post.wecom], "企业微信账号格式不正确（只能包含字母、数字和_-@.）")
