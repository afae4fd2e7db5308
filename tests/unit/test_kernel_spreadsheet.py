"""One spreadsheet reader (shared/domain/spreadsheet.py) for the roster, the responsibility matrix
and the knowledge base: the same files read, the same files refused, with the sheet's row numbers."""
from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest

from shared.domain.spreadsheet import XLS_REFUSED, ImportRejected, SpreadsheetError, cell_text, read_rows

ROWS = [["村(社区)", "户主", "联系电话"], ["韶山村", "毛德生", "13800138000"]]


def xlsx(rows, *, sheets=1) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    for i in range(1, sheets):
        book.create_sheet(f"其他{i}").append(["不读"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_text(rows) -> str:
    return "\r\n".join(",".join(r) for r in rows) + "\r\n"


def rows_of(data, filename):
    return [(n, [cell_text(v) for v in cells]) for n, cells in read_rows(data, filename)]


@pytest.mark.parametrize("data, filename", [
    (csv_text(ROWS).encode("utf-8"), "r.csv"),
    (b"\xef\xbb\xbf" + csv_text(ROWS).encode("utf-8"), "r.csv"),     # UTF-8 with BOM (Excel's "CSV UTF-8")
    (csv_text(ROWS).encode("gbk"), "r.csv"),                          # Excel in China
    (csv_text(ROWS).encode("gb18030"), "R.CSV"),
    (csv_text(ROWS).encode("utf-8"), "no-extension"),                  # text without a name is CSV
    (xlsx(ROWS), "r.xlsx"),
    (xlsx(ROWS), "R.XLSX"),
    (xlsx(ROWS), "upload"),                                            # a zip without a name is xlsx
    (xlsx(ROWS, sheets=2), "r.xlsx"),                                  # only the first sheet
])
def test_every_accepted_format_reads_the_same_rows(data, filename):
    assert rows_of(data, filename) == [(1, ROWS[0]), (2, ROWS[1])]


def test_row_numbers_are_the_sheets_own_with_blank_rows_kept():
    data = xlsx([ROWS[0], [None, None, None], ROWS[1]])
    assert [n for n, _ in read_rows(data, "r.xlsx")] == [1, 2, 3]
    text = csv_text(ROWS[:1]) + ",,\r\n" + '"韶山村\r\n老屋场",毛德生,13800138000\r\n'
    read = rows_of(text.encode("utf-8"), "r.csv")
    assert [n for n, _ in read] == [1, 2, 3]            # a quoted cell spanning lines is one row
    assert read[2][1][0] == "韶山村\r\n老屋场"


@pytest.mark.parametrize("data, filename", [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "r.xls"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "r.xlsx"),      # renamed, still the old format
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "r.csv"),
    (csv_text(ROWS).encode("utf-8"), "r.XLS"),                          # the name alone says .xls
])
def test_xls_gets_one_answer_everywhere(data, filename):
    with pytest.raises(SpreadsheetError) as info:
        list(read_rows(data, filename))
    assert str(info.value) == XLS_REFUSED
    assert "请另存为 .xlsx 后再导入" in XLS_REFUSED


@pytest.mark.parametrize("data, filename, message", [
    (b"PK\x03\x04 not really a zip", "r.xlsx", "无法读取该xlsx文件"),
    (b"a,b\x00c", "r.csv", "无法识别的文件格式"),
    ("户主,电话\r\n".encode("utf-16"), "r.csv", "无法识别的文件格式"),
    (b"\x81\x30\x81", "r.csv", "无法识别CSV文件的编码"),
])
def test_unreadable_files_are_refused_with_a_message_for_people(data, filename, message):
    with pytest.raises(SpreadsheetError, match=message):
        list(read_rows(data, filename))


def test_a_damaged_sheet_is_refused_not_crashed():
    good = xlsx(ROWS)
    broken = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            body = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                body = body[: len(body) // 2]
            dst.writestr(item, body)
    with pytest.raises(SpreadsheetError):
        list(read_rows(broken.getvalue(), "r.xlsx"))


def test_rows_come_lazily():
    data = csv_text([["户主"]] + [[f"户{i}"] for i in range(1000)]).encode("utf-8")
    rows = read_rows(data, "r.csv")
    assert next(rows) == (1, ["户主"]) and next(rows) == (2, ["户0"])


@pytest.mark.parametrize("value, text", [
    (None, ""), ("  毛德生 ", "毛德生"), (13800138000.0, "13800138000"), (430382100.0, "430382100"),
    (12, "12"), (1.5, "1.5"), (True, "是"), (False, "否"), ("", ""),
])
def test_cell_text(value, text):
    assert cell_text(value) == text


def test_import_rejected_carries_every_error():
    exc = ImportRejected("花名册有误", [{"row": 3, "column": "户主", "message": "不能为空"}])
    assert str(exc) == "花名册有误" and exc.errors[0]["row"] == 3


def test_the_three_importers_refuse_xls_alike():
    from services.dispatch.roster import RosterError, import_roster
    from services.escalation.matrix import MatrixError, parse_matrix
    from services.intake.knowledge import KbError, read_sheet

    old = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64)
    refusals = []
    for call, error in ((lambda: import_roster("430382100", old, "r.xls"), RosterError),
                        (lambda: parse_matrix("430382", old, "m.xls", lambda _: None), MatrixError),
                        (lambda: read_sheet(old, "kb.xls"), KbError)):
        with pytest.raises(error) as info:
            call()
        assert isinstance(info.value, ImportRejected)
        refusals.append([e["message"] for e in info.value.errors])
    assert refusals == [[XLS_REFUSED]] * 3
