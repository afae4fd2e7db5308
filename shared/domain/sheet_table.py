"""A spreadsheet as township offices keep it, read into a header and data rows for an importer.

``read_table(data, filename, headers)`` adds, between the file (shared/domain/spreadsheet.py) and the
importer:

- **the header row found** among the first HEADER_SCAN_ROWS rows: the row naming most of the
  importer's known headers; title rows above it ("XX镇三长制联户台账（2026年）") are skipped and
  reported ("表头在第2行");
- **merged cells filled** from their range's top-left value (.xlsx): a 村 cell merged over forty
  households gives all forty their village; ``merged_from(row, index)`` names the range's first
  cell for a cell inside one, for hints;
- **trailing totals and notes rows** (合计、总计、备注、填表说明、制表人…, and plain text lines after
  them) set aside and reported, not handed to the importer; such a row in the middle of the data is
  handed over (it is then an error the importer names) and flagged, so the error can say what it is;
- **hidden rows and columns read as any other** and reported, so nothing is dropped unseen.

Row numbers stay the sheet's own; ``cell(row, index)`` names a cell as Excel does ("C5").
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from . import phones
from .sheet_layout import Layout, column_letter, read_layout
from .spreadsheet import cell_text, read_rows

HEADER_SCAN_ROWS = 10
MAX_LISTED = 20
# A totals row may run on ("合计356户"); a note's first word stands alone or before a colon.
_TOTALS = re.compile(r"^(合计|总计|小计|共计)")
_NOTES = re.compile(r"^(备注|附注|注|注\d+|说明|填表说明|填报说明|制表|制表人|填表人|填报人|审核|审核人|审核意见|"
                    r"负责人|统计人|联系人|填表日期|制表日期|填报日期|填报单位|日期)([:：]|$)")


def fold(text: str) -> str:
    """A header as compared: full-width folded (（）→()), every space and line break removed."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def is_marker(cells: list) -> bool:
    """A totals or notes row: its first filled cell starts with 合计/总计/… or 备注：/制表人：… A bare
    备注 or 说明 counts only on a row of at most two texts: in a row of data it is a value (a 类别)."""
    filled = [t for t in (cell_text(v) for v in cells) if t]
    text = fold(filled[0]) if filled else ""
    if _TOTALS.match(text):
        return True
    note = _NOTES.match(text)
    return bool(note) and (note.group(2) != "" or len(set(filled)) <= 2)


@dataclass
class Table:
    header_row: int | None
    header: list[str]
    layout: Layout
    skipped: list[dict] = field(default_factory=list)
    marker_rows: set[int] = field(default_factory=set)
    _rest: Iterator = field(default_factory=lambda: iter(()))

    def rows(self) -> Iterator[tuple[int, list]]:
        """The data rows below the header (blank ones included), trailing notes held back into ``skipped``."""
        held: list[tuple[int, list]] = []
        for number, cells in self._rest:
            if held and _continues_notes(cells):
                held.append((number, cells))
                continue
            if is_marker(cells):
                held.append((number, cells))
                continue
            if held:  # the notes were not at the end: hand them over, flagged
                self.marker_rows.update(n for n, c in held if is_marker(c))
                yield from held
                held = []
            yield number, cells
        # A note may name someone with their number (制表人：王红 138…): reported masked.
        self.skipped = [{"row": n, "text": phones.mask_text(_row_text(c))} for n, c in held if _row_text(c)]

    def cell(self, row: int, index: int | None) -> str | None:
        return None if index is None else f"{column_letter(index)}{row}"

    def merged_from(self, row: int, index: int | None) -> str | None:
        """The first cell of the merged range a cell lies inside (not being that first cell), e.g.
        "A3" for A7 under a 村 merged over A3:A40; None otherwise. Looked up on demand (for an
        error's hint), so a sheet of 100 000 merged rows keeps nothing per cell."""
        if index is None:
            return None
        col = index + 1
        for r1, c1, r2, c2 in self.layout.merges:
            if r1 <= row <= r2 and c1 <= col <= c2 and (row, col) != (r1, c1):
                return f"{column_letter(c1 - 1)}{r1}"
        return None

    def notices(self) -> list[dict]:
        """What the reader did beyond reading (reported to the person, not errors); call after rows()."""
        out = []
        if self.header_row and self.header_row > 1:
            out.append(_notice(self.header_row, None,
                               f"表头在第{self.header_row}行，上方{self.header_row - 1}行（标题等）未导入"))
        for index, text in enumerate(self.header):
            if index + 1 in self.layout.hidden_columns and text:
                out.append(_notice(self.header_row, index, f"{column_letter(index)}列「{text}」在Excel中被隐藏，仍照常读取"))
        hidden = sorted(r for r in self.layout.hidden_rows if self.header_row and r > self.header_row)
        if hidden:
            listed = "、".join(str(r) for r in hidden[:MAX_LISTED]) + (f"等{len(hidden)}行" if len(hidden) > MAX_LISTED else "行")
            out.append(_notice(hidden[0], None, f"第{listed}在Excel中被隐藏，仍照常导入；不需要的行请删除"))
        for item in self.skipped:
            out.append(_notice(item["row"], None, f"第{item['row']}行是合计或备注行，未导入：{item['text'][:40]}"))
        return out


def read_table(data: bytes, filename: str, headers: Iterable[str],
               key: Callable[[str], str] = fold) -> Table:
    """The table of the first sheet; raises SpreadsheetError as read_rows does."""
    known = {key(h) for h in headers}
    rows = read_rows(data, filename)
    layout = read_layout(data) if _is_xlsx(data, filename) else Layout()
    stream = _filled(rows, layout)
    first: list[tuple[int, list]] = []
    for item in stream:
        first.append(item)
        if len(first) == HEADER_SCAN_ROWS:
            break
    at = _header_index(first, known, key)
    if at is None:
        return Table(None, [], layout, _rest=iter(()))
    number, cells = first[at]
    return Table(number, [cell_text(v) for v in cells], layout, _rest=_chain(first[at + 1:], stream))


def _is_xlsx(data: bytes, filename: str) -> bool:
    return (filename or "").lower().endswith(".xlsx") or data.startswith(b"PK")


def _header_index(first: list[tuple[int, list]], known: set[str], key) -> int | None:
    """The row naming most known headers; with none named, the first non-blank row (the importer
    then reports the missing columns on it)."""
    best, best_score = None, 0
    for i, (_, cells) in enumerate(first):
        score = len({key(cell_text(v)) for v in cells} & known)
        if score > best_score:
            best, best_score = i, score
    if best is not None:
        return best
    return next((i for i, (_, cells) in enumerate(first) if any(cell_text(v) for v in cells)), None)


def _chain(head: list, tail: Iterator) -> Iterator:
    yield from head
    yield from tail


def _filled(rows: Iterator[tuple[int, list]], layout: Layout) -> Iterator[tuple[int, list]]:
    """Rows with each merged range's empty cells given the top-left cell's value."""
    origin: dict[tuple[int, int], object] = {}
    cover = layout.cover()
    for number, cells in rows:
        for r1, c1, r2, c2 in cover.at(number):
            if len(cells) < c2:
                cells.extend([None] * (c2 - len(cells)))
            if number == r1:
                origin[(r1, c1)] = cells[c1 - 1]
            value = origin.get((r1, c1))
            for c in range(c1, c2 + 1):
                if (number, c) != (r1, c1) and cell_text(cells[c - 1]) == "" and value is not None:
                    cells[c - 1] = value
        yield number, cells


def _continues_notes(cells: list) -> bool:
    """After a notes row, a line with one text (often merged across the columns) is more of the notes."""
    return len({t for t in (cell_text(v) for v in cells) if t}) <= 1


def _row_text(cells: list) -> str:
    return " ".join(dict.fromkeys(t for t in (cell_text(v) for v in cells) if t))


def _notice(row: int | None, index: int | None, message: str) -> dict:
    return {"row": row, "column": column_letter(index) if index is not None else None, "message": message}
