"""The table reader every importer shares (shared/domain/sheet_table.py, sheet_layout.py): the header
found below title rows, merged cells filled, trailing totals and notes set aside, hidden rows and
columns read and reported — on sheets built here with openpyxl, and in CSV where that applies."""
from __future__ import annotations

import io

import openpyxl
import pytest

from shared.domain.sheet_layout import column_letter, read_layout
from shared.domain.sheet_table import is_marker, read_table
from shared.domain.spreadsheet import SpreadsheetError, cell_text

HEADERS = ("类别", "牵头部门", "配合部门")


def book(rows, merges=(), hidden_rows=(), hidden_columns=()) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    for ref in merges:
        sheet.merge_cells(ref)
    for row in hidden_rows:
        sheet.row_dimensions[row].hidden = True
    for letter in hidden_columns:
        sheet.column_dimensions[letter].hidden = True
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def texts(table) -> list[tuple[int, list[str]]]:
    """Rows as text, padded to the header's width (a sheet's row ends at its last filled cell)."""
    width = len(table.header)
    return [(n, [cell_text(v) for v in cells] + [""] * (width - len(cells))) for n, cells in table.rows()]


def test_the_header_is_the_row_naming_most_known_headers_below_a_title():
    data = book([["韶山市部门责任清单"], ["填报单位：韶山市政府办", None, "2026年"], ["类别", "牵头部门", "配合部门"],
                 ["road", "交通局", None]], merges=("A1:C1",))
    table = read_table(data, "m.xlsx", HEADERS)
    assert (table.header_row, table.header) == (3, ["类别", "牵头部门", "配合部门"])
    assert texts(table) == [(4, ["road", "交通局", ""])]
    assert table.notices()[0] == {"row": 3, "column": None, "message": "表头在第3行，上方2行（标题等）未导入"}


def test_the_header_is_looked_for_in_the_first_ten_rows_only():
    data = book([[f"说明{i}"] for i in range(10)] + [list(HEADERS)])
    table = read_table(data, "m.xlsx", HEADERS)
    assert table.header_row == 1  # no header among the first ten: the first non-blank row, for the importer to refuse


def test_header_names_are_compared_folded():
    table = read_table("类 别,牵头部门\r\n,x\r\n".encode("gbk"), "m.csv", ["类别", "牵头部门"])
    assert table.header_row == 1 and table.header == ["类 别", "牵头部门"]


def test_merged_cells_take_their_ranges_top_left_value_and_are_remembered():
    data = book([list(HEADERS), ["road", "交通局", "城管局"], ["water", None, None], ["power", None, "电力公司"]],
                merges=("B2:B4", "C2:C3"))
    table = read_table(data, "m.xlsx", HEADERS)
    assert texts(table) == [(2, ["road", "交通局", "城管局"]), (3, ["water", "交通局", "城管局"]),
                            (4, ["power", "交通局", "电力公司"])]
    assert [table.merged_from(r, c) for r, c in ((3, 1), (4, 1), (3, 2), (4, 2), (2, 1), (3, 0))] == [
        "B2", "B2", "C2", None, None, None]
    assert table.cell(4, 1) == "B4"


def test_trailing_totals_notes_and_their_text_lines_are_set_aside():
    data = book([list(HEADERS), ["road", "交通局", None], [None, None, None], ["合计", "1项", None],
                 ["备注：", None, None], ["以上清单每年更新。", "以上清单每年更新。", None], ["制表人：王红", None, "审核人：李强"]],
                merges=("A6:B6",))
    table = read_table(data, "m.xlsx", HEADERS)
    assert [n for n, cells in table.rows() if any(cell_text(v) for v in cells)] == [2]
    assert [s["row"] for s in table.skipped] == [4, 5, 6, 7]
    assert table.skipped[3]["text"] == "制表人：王红 审核人：李强"


def test_a_marker_row_followed_by_data_is_handed_over_and_flagged():
    data = "类别,牵头部门\r\nroad,交通局\r\n小计,1\r\nwater,水利局\r\n".encode("utf-8")
    table = read_table(data, "m.csv", HEADERS)
    assert [n for n, _ in table.rows()] == [2, 3, 4]
    assert table.marker_rows == {3} and table.skipped == []


@pytest.mark.parametrize("cells, marker", [
    (["合计", "356户"], True), (["总计：12"], True), (["备注"], True), (["注：重点户每周走访"], True),
    (["制表人：王红"], True), ([None, "填表日期：2026年1月"], True),
    (["说明书在哪领？", "到村部"], False), (["注销户口怎么办"], False), (["韶山村", "合计"], False), ([], False),
    (["说明", "低保怎么申请？", "到村部申请。"], False),   # a knowledge base row whose 类别 is 说明
    (["制表人：王红", "审核人：李强", "日期：2026年1月"], True),
])
def test_what_counts_as_a_totals_or_notes_row(cells, marker):
    assert is_marker(cells) is marker


def test_hidden_rows_and_columns_are_read_and_reported():
    data = book([list(HEADERS), ["road", "交通局", "城管局"], ["water", "水利局", None]],
                hidden_rows=(3,), hidden_columns=("C",))
    table = read_table(data, "m.xlsx", HEADERS)
    assert texts(table)[1] == (3, ["water", "水利局", ""])
    assert [n["message"] for n in table.notices()] == ["C列「配合部门」在Excel中被隐藏，仍照常读取",
                                                       "第3行在Excel中被隐藏，仍照常导入；不需要的行请删除"]


def test_layout_of_an_unusual_archive_is_empty_not_an_error():
    assert read_layout(b"PK\x03\x04 not a zip") == read_layout(b"")
    assert read_layout(book([["a"]])).merges == []


def test_a_file_that_cannot_be_read_is_refused_as_before():
    with pytest.raises(SpreadsheetError, match="请另存为 .xlsx 后再导入"):
        read_table(b"\xd0\xcf\x11\xe0" + bytes(60), "m.xls", HEADERS)


@pytest.mark.parametrize("index, letters", [(0, "A"), (25, "Z"), (26, "AA"), (701, "ZZ"), (702, "AAA")])
def test_column_letters_as_excel_names_them(index, letters):
    assert column_letter(index) == letters
