"""Reading a spreadsheet a township or a city uploads: one reader for the roster, the
responsibility matrix and the knowledge base, so all three accept and refuse the same files.

Accepted: .xlsx (the first sheet) and CSV in UTF-8, UTF-8 with BOM or GBK (Excel in China saves
CSV as GBK; gb18030 is its superset). Refused with one message each, whoever reads: the legacy
binary .xls, damaged files, binary or unknown encodings.

``read_rows`` yields ``(row number, raw cell values)`` with the spreadsheet's own numbering (the
first row is 1; a CSV record that spans lines is one row), blank rows included, so callers can cite
rows exactly as Excel shows them. The rows come lazily: a caller that stops at its row limit does not
pay for the rest.

``read_table`` is what the importers use: the same rows, shaped as township offices keep their
sheets (shared/domain/sheet_table.py): the header row found among the first rows (title rows
above it skipped), merged cells filled from their range's top-left value, trailing totals and notes
rows (合计、备注、制表人…) set aside and reported, hidden rows and columns read and reported.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Iterator

import openpyxl

XLS_REFUSED = "不支持旧版Excel（.xls）文件，请另存为 .xlsx 后再导入"
UNREADABLE_XLSX = "无法读取该xlsx文件，请确认文件未损坏"
NO_SHEET = "xlsx文件中没有工作表"
DAMAGED = "文件内容已损坏或格式不正确，无法读取"
NOT_TEXT = "无法识别的文件格式，请上传.xlsx或CSV文件"
UNKNOWN_ENCODING = "无法识别CSV文件的编码，请另存为UTF-8或GBK编码"
STALE_PREVIEW = "预览之后数据已被修改（可能有其他人刚导入或调整过），请重新预览后再提交"

_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the legacy binary .xls (and every other OLE2 document)
_ENCODINGS = ("utf-8-sig", "gb18030")


class ImportRejected(Exception):
    """An import refused whole (roster, matrix, knowledge base); ``errors`` holds
    {"row", "column", "message"} dicts, rows numbered as the spreadsheet shows them."""

    def __init__(self, message: str, errors: list[dict]):
        super().__init__(message)
        self.errors = errors


class StalePreview(Exception):
    """A commit made with a preview's ``base`` after the stored data changed since that preview."""

    def __init__(self):
        super().__init__(STALE_PREVIEW)


def content_base(value) -> str:
    """A 16-hex token for stored data as an import sees it: a preview returns it, and a commit given
    it refuses with StalePreview when the data no longer hashes the same."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class SpreadsheetError(Exception):
    """The file as a whole cannot be read; ``str(exc)`` is the message for the person who uploaded it."""


def read_rows(data: bytes, filename: str) -> Iterator[tuple[int, list]]:
    """(row number, raw cell values) for every row of the first sheet; raises SpreadsheetError,
    possibly mid-iteration for a file that breaks half-way."""
    name = (filename or "").lower()
    if data.startswith(_OLE_MAGIC) or name.endswith(".xls"):
        raise SpreadsheetError(XLS_REFUSED)
    if name.endswith(".xlsx") or data.startswith(b"PK"):  # xlsx is a zip archive
        return _xlsx_rows(data)
    return _csv_rows(data)


def cell_text(value) -> str:
    """A cell as text, stripped: '' for empty, 是/否 for a boolean, and a whole number Excel stored
    as a float (a phone or a township code typed as a number: 13812345678.0) without its '.0'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _xlsx_rows(data: bytes) -> Iterator[tuple[int, list]]:
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl fails on a damaged or foreign file in many ways; all mean "unreadable"
        raise SpreadsheetError(UNREADABLE_XLSX) from exc
    try:
        if not book.worksheets:
            raise SpreadsheetError(NO_SHEET)
        sheet = book.worksheets[0]
        # Some generators write a wrong <dimension>; without this a read-only sheet stops where it claims to end.
        sheet.reset_dimensions()
        yield from enumerate(_guarded(sheet.iter_rows(values_only=True)), start=1)
    finally:
        book.close()


def _csv_rows(data: bytes) -> Iterator[tuple[int, list]]:
    reader = csv.reader(io.StringIO(_decode(data), newline=""))
    # One record is one spreadsheet row even when a quoted cell spans lines, so count records, not lines.
    yield from enumerate(_guarded(reader), start=1)


def _decode(data: bytes) -> str:
    if b"\x00" in data:  # no text encoding we accept has NUL bytes: this is a binary file or UTF-16
        raise SpreadsheetError(NOT_TEXT)
    # UTF-8 is tried first because GBK decodes almost any byte soup, while UTF-8 rarely accepts GBK text.
    for encoding in _ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise SpreadsheetError(UNKNOWN_ENCODING)


def _guarded(rows: Iterator) -> Iterator:
    """Turns a parser's failure mid-file into SpreadsheetError, leaving the caller's code outside the try."""
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:
            raise SpreadsheetError(DAMAGED) from exc
        yield list(row)
