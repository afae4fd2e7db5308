"""Contacts of the posts above the three leads: each village committee's (村两委) duty contacts and
the township's staff (镇干部), read from a sheet or a CSV with Chinese headers.

Pure: bytes (or one JSON contact) and the township's villages in, ``PostContact`` rows or a
``ContactsError`` out. A bad file is refused whole, every error numbered as the spreadsheet shows
its rows. Ids derive from township, post and person, so importing the same file again changes nothing.

Columns, in any order: ``村(社区)`` (empty: the township's staff), ``姓名``, ``职务`` (书记, 主任,
值班, 包村干部, 分管领导 …; empty: 值班), ``电话``, ``企业微信``, ``顺序`` (order of precedence, 1 first;
empty: the rows' order). Each contact needs a phone or a WeCom id, else nobody could reach them.
"""
from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field

from shared.domain import phones
from shared.domain.addresses import normalise_address
from shared.domain.ids import township_unit_id
from shared.domain.spreadsheet import ImportRejected, SpreadsheetError, cell_text, read_rows

from .roster import unit_id as roster_unit_id

MAX_CONTACTS = 5_000
MAX_ERRORS = 200
SHEET = "联系人"
# A roster workbook's contacts sheet is found by its name: "联系人", "村委会及镇干部", "村两委及镇干部联系人" …
SHEET_WORDS = ("联系人", "镇干部", "两委", "村委会")
HEADERS = {"village": "村(社区)", "name": "姓名", "duty": "职务", "phone": "电话", "wecom_id": "企业微信",
           "precedence": "顺序"}
REQUIRED = ("village", "name")
DEFAULT_DUTY = "值班"
TOWNSHIP_WORDS = ("", "镇", "镇干部", "镇(街道)", "乡", "街道")
_WECOM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-@.]{0,63}")
_PLAIN = re.compile(r"[^\x00-\x1f\x7f|]*")


@dataclass(frozen=True)
class PostContact:
    id: str
    township: str
    unit_id: str
    level: str                 # village | township
    unit_name: str
    name: str
    duty: str
    phone: str | None = field(repr=False)
    wecom_id: str | None
    precedence: int
    row: int = 0


class ContactsError(ImportRejected):
    """The whole contacts file (or sheet) is refused; `errors` holds {"sheet", "row", "column", "message"}."""

    def __init__(self, errors: list[dict]):
        super().__init__(f"联系人表有误，列出{len(errors)}处错误", errors[:MAX_ERRORS])


def contact_id(township: str, unit_id: str, name: str) -> str:
    return "c-" + hashlib.sha1("|".join((township, unit_id, name)).encode("utf-8")).hexdigest()[:16]


def workbook_contacts(org, data: bytes, township_name: str) -> list[PostContact] | None:
    """The contacts sheet of a roster workbook, checked against the villages of the roster `org`
    it comes with; None when the workbook has no such sheet (the stored contacts then stay)."""
    found = contacts_sheet(data)
    if found is None:
        return None
    sheet_data, sheet_name = found
    villages = village_units(org.township, [u.name for u in org.units_at("village")])
    return parse_contacts(sheet_data, "contacts.xlsx", org.township, villages, township_name, sheet=sheet_name)


def contacts_sheet(data: bytes) -> tuple[bytes, str] | None:
    """The roster workbook with its contacts sheet moved first, so the one reader reads it, and the
    sheet's name; None when the file is not a workbook or has no such sheet besides the first."""
    if not data.startswith(b"PK"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            xml = book.read("xl/workbook.xml").decode("utf-8")
            entries = [(info, book.read(info.filename)) for info in book.infolist()]
    except Exception:  # not a readable workbook: the roster reader says so in its own words
        return None
    sheets = re.findall(r"<(?:\w+:)?sheet\b[^>]*?/>", xml)
    wanted = next((s for s in sheets[1:] if _is_contacts_name(_attr(s, "name"))), None)
    if wanted is None:
        return None
    name = _attr(wanted, "name")
    xml = xml.replace(wanted, "", 1).replace(sheets[0], wanted + sheets[0], 1)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for info, body in entries:
            book.writestr(info, xml.encode("utf-8") if info.filename == "xl/workbook.xml" else body)
    return out.getvalue(), name


def _attr(element: str, name: str) -> str:
    found = re.search(rf'\b{name}="([^"]*)"', element)
    text = found.group(1) if found else ""
    return text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')


def _is_contacts_name(name: str) -> bool:
    return any(word in name for word in SHEET_WORDS)


# -- reading --------------------------------------------------------------------------------------

def parse_contacts(data: bytes, filename: str, township: str, villages: dict[str, str],
                   township_name: str, *, sheet: str = SHEET) -> list[PostContact]:
    """Every contact of the file, checked; `villages` maps a village's name to its unit id."""
    errors: list[dict] = []
    add = lambda row, column, message: errors.append(  # noqa: E731
        {"sheet": sheet, "row": row, "column": column, "message": message})
    if not data:
        add(1, None, "文件为空")
        raise ContactsError(errors)
    try:
        records = _records(read_rows(data, filename), add)
    except SpreadsheetError as exc:
        raise ContactsError([{"sheet": sheet, "row": 1, "column": None, "message": str(exc)}]) from None
    contacts = _resolve(records, township, villages, township_name, add)
    if errors:
        raise ContactsError(sorted(errors, key=lambda e: e["row"]))
    return contacts


def _records(table, add) -> list[tuple[int, dict]]:
    first = next(table, None)
    header = [_key(cell_text(v)) for v in first[1]] if first else []
    by_key = {_key(text): name for name, text in HEADERS.items()}
    columns = {}
    for index, text in enumerate(header):
        if text in by_key:
            if by_key[text] in columns:
                add(1, HEADERS[by_key[text]], f"列「{HEADERS[by_key[text]]}」重复出现")
            columns[by_key[text]] = index
    missing = [HEADERS[n] for n in REQUIRED if n not in columns]
    for text in missing:
        add(1, text, f"缺少必填列「{text}」")
    if missing or ("phone" not in columns and "wecom_id" not in columns):
        if not missing:
            add(1, HEADERS["phone"], "缺少「电话」或「企业微信」列，至少要有其中一列")
        return []
    records = []
    for number, cells in table:
        values = {n: normalise_address(cell_text(cells[i])) if i < len(cells) else "" for n, i in columns.items()}
        if not any(values.values()):
            continue
        if len(records) == MAX_CONTACTS:
            add(number, None, f"联系人超过{MAX_CONTACTS}行的上限")
            break
        records.append((number, values))
    if not records:
        add(2, None, "联系人表没有数据行")
    return records


def _key(text: str) -> str:
    return "".join(normalise_address(text).split())


def _resolve(records, township: str, villages: dict[str, str], township_name: str, add) -> list[PostContact]:
    contacts, seen, order = [], {}, {}
    for number, values in records:
        checked, problems = check_contact(values, villages)
        for column, message in problems:
            add(number, column, message)
        if checked is None:
            continue
        village = checked["village"]
        unit = villages[village] if village else township_unit_id(township)
        first = seen.setdefault((unit, checked["name"]), number)
        if first != number:
            add(number, HEADERS["name"], f"「{checked['name']}」在同一村(社区)或镇干部中与第{first}行重复")
            continue
        order[unit] = order.get(unit, 0) + 1
        contacts.append(_contact(township, unit, village or township_name, checked,
                                 checked["precedence"] or order[unit], number))
    return contacts


def _contact(township, unit, unit_name, checked, precedence, row=0) -> PostContact:
    return PostContact(contact_id(township, unit, checked["name"]), township, unit,
                       "village" if checked["village"] else "township", unit_name, checked["name"],
                       checked["duty"] or DEFAULT_DUTY, checked["phone"], checked["wecom_id"], precedence, row)


def check_contact(values: dict, villages: dict[str, str]) -> tuple[dict | None, list[tuple[str, str]]]:
    """One contact's cells checked and normalised, and (column, message) for what is wrong; the
    file and the JSON API share it, so both refuse the same values with the same words."""
    problems: list[tuple[str, str]] = []
    add = lambda column, message: problems.append((column, message))  # noqa: E731
    village = normalise_address(values.get("village") or "")
    village = "" if village in TOWNSHIP_WORDS else village
    if village and village not in villages:
        add(HEADERS["village"], f"村(社区)「{village}」不在花名册中，请先导入花名册或改正村名（镇干部此列留空）")
    name = normalise_address(values.get("name") or "")
    if not name:
        add(HEADERS["name"], "「姓名」不能为空")
    for key in ("name", "duty"):
        text = values.get(key) or ""
        if len(text) > 40 or not _PLAIN.fullmatch(text):
            add(HEADERS[key], f"「{HEADERS[key]}」不能超过40个字，也不能包含控制字符或“|”")
    raw_phone, wecom = (values.get("phone") or "").strip(), (values.get("wecom_id") or "").strip()
    phone = phones.normalise(raw_phone) if raw_phone else None
    if raw_phone and phone is None:
        add(HEADERS["phone"], "电话号码格式不正确（应为11位手机号，或带区号的固定电话如0731-55512345）")
    if wecom and not _WECOM_ID.fullmatch(wecom):
        add(HEADERS["wecom_id"], "企业微信账号格式不正确（只能包含字母、数字和_-@.）")
    if not raw_phone and not wecom:
        add(HEADERS["phone"], "「电话」和「企业微信」至少填一项，否则无法联系此人")
    precedence = _precedence(values.get("precedence"), add)
    if problems:
        return None, problems
    return {"village": village, "name": name, "duty": values.get("duty") or "", "phone": phone,
            "wecom_id": wecom or None, "precedence": precedence}, []


def _precedence(raw, add) -> int | None:
    text = str(raw).strip() if raw not in (None, "") else ""
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 999:
        add(HEADERS["precedence"], "「顺序」应为1到999的整数（1最先联系）")
        return None
    return int(text)


def preview_posts(org, contacts: list[PostContact] | None, township_name: str) -> list[dict]:
    """The posts of a roster `org` read but not stored (the roster's preview), in the shape
    shared.domain.reachability.unreachable_posts takes: each unit with its lead, the villages and
    the township with `contacts` (None: none known)."""
    people: dict[str, list] = {}
    for c in sorted(contacts or [], key=lambda c: (c.precedence, c.name)):
        people.setdefault(c.unit_id, []).append({"name": c.name, "duty": c.duty, "phone": c.phone,
                                                 "wecom_id": c.wecom_id, "precedence": c.precedence})
    township_id = township_unit_id(org.township)
    posts = [{"unit_id": township_id, "level": "township", "unit_name": township_name, "parent_id": None,
              "people": people.get(township_id, [])}]
    for unit in org.units.values():
        lead = [{"name": unit.lead.name, "phone": unit.lead.phone, "wecom_id": unit.lead.wecom_id,
                 "precedence": 1}] if unit.lead else []
        posts.append({"unit_id": unit.id, "level": unit.level, "unit_name": unit.name,
                      "parent_id": unit.parent_id or township_id, "people": lead + people.get(unit.id, [])})
    return posts


def village_units(township: str, names) -> dict[str, str]:
    """Village name → unit id (ids derive from the org path, so a name alone names its unit)."""
    return {name: roster_unit_id(township, name) for name in names}
