"""What an .xlsx sheet says beyond its values: merged ranges, hidden rows and hidden columns.

openpyxl's read-only mode (the one that streams a 100 000-row roster in little memory) does not
expose merges or hidden rows, so they are read here straight from the sheet's XML, streamed too.
Excel and WPS write the same parts (xl/workbook.xml names the sheets in tab order,
xl/_rels/workbook.xml.rels where each one lives).
"""
from __future__ import annotations

import io
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from xml.etree import ElementTree

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_REF = re.compile(r"([A-Z]+)([0-9]+)")


@dataclass
class Layout:
    """Merged ranges as (first row, first column, last row, last column), 1-based as Excel counts;
    hidden rows and columns by number (columns 1-based)."""
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)
    hidden_rows: set[int] = field(default_factory=set)
    hidden_columns: set[int] = field(default_factory=set)

    def cover(self) -> "_Cover":
        return _Cover(self.merges)


class _Cover:
    """The merges covering each row, asked for in ascending row order: merges start and end as the
    rows pass, so a merge over 50 000 rows costs nothing on the rows it is not on."""

    def __init__(self, merges: list[tuple[int, int, int, int]]):
        self.pending = sorted(merges)
        self.active: list[tuple[int, int, int, int]] = []
        self.next = 0

    def at(self, row: int) -> list[tuple[int, int, int, int]]:
        while self.next < len(self.pending) and self.pending[self.next][0] <= row:
            self.active.append(self.pending[self.next])
            self.next += 1
        if self.active:
            self.active = [m for m in self.active if m[2] >= row]
        return self.active


def column_number(letters: str) -> int:
    number = 0
    for char in letters:
        number = number * 26 + ord(char) - 64
    return number


def column_letter(index: int) -> str:
    """0-based column index → Excel's letters (0 → A, 26 → AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def read_layout(data: bytes) -> Layout:
    """The first sheet's layout; an empty Layout when the parts are missing or odd (values still read)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            path = _first_sheet_path(archive)
            if path is None or path not in archive.namelist():
                return Layout()
            with archive.open(path) as sheet:
                return _scan(sheet)
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError, ValueError, OSError):
        return Layout()


def _first_sheet_path(archive: zipfile.ZipFile) -> str | None:
    book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    sheet = book.find(f"{_MAIN}sheets/{_MAIN}sheet")
    if sheet is None:
        return None
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    for rel in rels.iter(f"{_RELS}Relationship"):
        if rel.get("Id") == sheet.get(_REL_ID):
            target = rel.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"xl/{target}")
    return None


def _scan(sheet) -> Layout:
    layout = Layout()
    for event, element in ElementTree.iterparse(sheet, events=("start", "end")):
        tag = element.tag
        if event == "start":
            if tag == f"{_MAIN}row" and _true(element.get("hidden")):
                layout.hidden_rows.add(int(element.get("r", "0")))
            elif tag == f"{_MAIN}col" and _true(element.get("hidden")):
                layout.hidden_columns.update(range(int(element.get("min")), int(element.get("max")) + 1))
            elif tag == f"{_MAIN}mergeCell":
                merge = _range(element.get("ref", ""))
                if merge:
                    layout.merges.append(merge)
        elif tag == f"{_MAIN}row":
            element.clear()  # a big sheet streams through without keeping its cells
    return layout


def _true(value: str | None) -> bool:
    return value in ("1", "true")


def _range(ref: str) -> tuple[int, int, int, int] | None:
    corners = [_REF.fullmatch(part) for part in ref.upper().split(":")]
    if len(corners) != 2 or not all(corners):
        return None
    (c1, r1), (c2, r2) = ((m.group(1), m.group(2)) for m in corners)
    return int(r1), column_number(c1), int(r2), column_number(c2)
