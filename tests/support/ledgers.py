"""Rosters as township offices keep them in Excel (no tests here): a title row merged across the
columns above the header, 村/片区/组 and their leads merged vertically over their households, phones
typed as numbers, a hidden column, a totals row and a notes row at the end.

``ledger()`` builds such an .xlsx with openpyxl; ``wps_xlsx()`` writes the parts by hand the way WPS
and some generators do (inline strings, no shared strings, an absolute part path).
"""
from __future__ import annotations

import io
import zipfile

import openpyxl

from tests.support.roster import HEADER

TITLE = "清溪镇三长制联户台账（2026年）"
# Two neighbourhoods of one group: 韶山村/一片/一组/第1邻 (3 households) and 第2邻 (2 households).
BLOCKS = [
    {"邻": "第1邻", "邻长": "周桂香", "邻长电话": 13873100003.0,
     "households": [("毛德生", "韶山村一组12号", 13800000001.0), ("彭淑芬", "韶山村一组14号", "138 0000 0002"),
                    ("李长庚", "韶山村一组16号", None)]},
    {"邻": "第2邻", "邻长": "胡秀兰", "邻长电话": "138-7310-0004",
     "households": [("周建国", "韶山村一组21号", 13800000005), ("文淑华", "韶山村一组23号", None)]},
]
AREA = {"村(社区)": "韶山村", "片区": "一片", "片长": "毛建华", "片长电话": 13873100001.0, "片长企业微信": "maojianhua",
        "村民小组": "一组", "组长": "彭立新", "组长电话": 13873100002.0}
# Columns merged over the whole sheet (the village and its area and group), and per neighbourhood block.
WHOLE = ("村(社区)", "片区", "片长", "片长电话", "片长企业微信", "村民小组", "组长", "组长电话")
PER_BLOCK = ("邻", "邻长", "邻长电话")


def ledger(*, blocks=BLOCKS, title: str | None = TITLE, hidden_column: str | None = "片长企业微信",
           totals: bool = True, notes: bool = True, hidden_row: int | None = None,
           extra_rows: list[list] | None = None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "联户台账"
    width = len(HEADER)
    last = openpyxl.utils.get_column_letter(width)
    if title:
        sheet.append([title])
        sheet.merge_cells(f"A1:{last}1")
    sheet.append(HEADER)
    first_data = sheet.max_row + 1
    for block in blocks:
        top = sheet.max_row + 1
        for i, (head, address, phone) in enumerate(block["households"]):
            cells = {"户主": head, "地址": address, "联系电话": phone}
            if i == 0:  # only the top cell of a merged range holds the value, as Excel keeps it
                cells.update({k: v for k, v in block.items() if k in PER_BLOCK})
                if top == first_data:
                    cells.update(AREA)
            sheet.append([cells.get(h) for h in HEADER])
        _merge(sheet, PER_BLOCK, top, sheet.max_row)
    _merge(sheet, WHOLE, first_data, sheet.max_row)
    for row in extra_rows or []:
        sheet.append(row)
    if totals:
        households = sum(len(b["households"]) for b in blocks)
        sheet.append(["合计", None, None, None, None, None, None, None, None, None, f"{households}户"])
    if notes:
        sheet.append(["填表说明：重点户指独居、孤寡、留守等需每周走访的家庭。"])
        sheet.merge_cells(f"A{sheet.max_row}:{last}{sheet.max_row}")
        sheet.append(["制表人：王红　　审核人：李强　　填表日期：2026年1月5日"])
    if hidden_column:
        sheet.column_dimensions[_letter(hidden_column)].hidden = True
    if hidden_row:
        sheet.row_dimensions[hidden_row].hidden = True
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _letter(header: str) -> str:
    return openpyxl.utils.get_column_letter(HEADER.index(header) + 1)


def _merge(sheet, headers, top: int, bottom: int) -> None:
    if bottom > top:
        for header in headers:
            sheet.merge_cells(f"{_letter(header)}{top}:{_letter(header)}{bottom}")


# -- a WPS-style file, written part by part ---------------------------------------------------------

_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
</Types>"""
_ROOT_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
_WORKBOOK = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"""
_WORKBOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="/xl/worksheets/sheet1.xml"/>
</Relationships>"""


def wps_xlsx(rows: list[list], merges: tuple[str, ...] = (), hidden_rows: tuple[int, ...] = ()) -> bytes:
    """An .xlsx as WPS and some generators write it: every text an inline string, numbers as
    numbers, the sheet named Sheet1 and reached by an absolute path."""
    body = []
    for r, row in enumerate(rows, start=1):
        cells = "".join(_cell(f"{openpyxl.utils.get_column_letter(c)}{r}", v) for c, v in enumerate(row, start=1)
                        if v is not None)
        hidden = ' hidden="1"' if r in hidden_rows else ""
        body.append(f'<row r="{r}"{hidden}>{cells}</row>')
    merged = "".join(f'<mergeCell ref="{m}"/>' for m in merges)
    sheet = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
             '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
             f'<sheetData>{"".join(body)}</sheetData>'
             + (f'<mergeCells count="{len(merges)}">{merged}</mergeCells>' if merges else "") + "</worksheet>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    return out.getvalue()


def _cell(ref: str, value) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<c r="{ref}"><v>{value}</v></c>'
    text = str(value).replace("&", "&amp;").replace("<", "&lt;")
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'
