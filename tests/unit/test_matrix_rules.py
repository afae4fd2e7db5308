"""The responsibility matrix's rules (services/escalation/matrix.py) on spreadsheets built in memory and a
fake department lookup: rows checked and refused by row and column, township rows beating city-wide ones,
every category needing a city-wide lead, and the spreadsheet forms a city sends. The API side (who may
import, the 422 body) is in tests/system/test_escalation_matrix.py."""
from __future__ import annotations

import io

import openpyxl
import pytest

from shared.domain.categories import CATEGORIES
from services.escalation.matrix import (MatrixError, category_label, check_row, missing_categories,
                                        parse_matrix, split_departments)

CITY = "430382"
DEPARTMENTS = {"住建局": "d-zjj", "交通局": "d-jtj", "城管局": "d-cg", "民政局": "d-mzj", "电信": "d-dx"}
HEADER = ["类别", "镇(街道)代码", "牵头部门", "配合部门", "备注"]


def lookup(name: str) -> dict | None:
    """Departments by name or id, as the directory answers (only registered, active ones)."""
    by_id = {v: v for v in DEPARTMENTS.values()}
    found = DEPARTMENTS.get(name) or by_id.get(name)
    return {"_id": found} if found else None


def complete(*extra: list) -> list[list]:
    """A city-wide lead for every category (住建局), then `extra` rows."""
    return [[CATEGORIES[c], "", "住建局", "", ""] for c in CATEGORIES] + list(extra)


def csv_bytes(rows: list[list], encoding: str = "utf-8", header: list = HEADER) -> bytes:
    lines = [",".join(header)] + [",".join(str(c) for c in row) for row in rows]
    return "\r\n".join(lines).encode(encoding)


def xlsx_bytes(rows: list[list], header: list = HEADER) -> bytes:
    book = openpyxl.Workbook()
    book.active.append(header)
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def errors(data: bytes, filename: str = "m.csv") -> list[dict]:
    with pytest.raises(MatrixError) as caught:
        parse_matrix(CITY, data, filename, lookup)
    return caught.value.errors


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_a_complete_csv_in_every_encoding_reads_to_one_row_per_category(encoding):
    rows = parse_matrix(CITY, csv_bytes(complete(), encoding), "m.csv", lookup)
    assert [r["category"] for r in rows] == list(CATEGORIES)
    assert {r["lead"] for r in rows} == {"d-zjj"} and all(r["township"] is None for r in rows)


def test_an_xlsx_with_a_township_code_typed_as_a_number_reads_like_the_csv():
    extra = ["road", 430382100, "交通局", "城管局、电信", "国道段"]
    from_xlsx = parse_matrix(CITY, xlsx_bytes(complete(extra)), "m.xlsx", lookup)
    from_csv = parse_matrix(CITY, csv_bytes(complete(["road", "430382100", "交通局", "城管局、电信", ""])),
                            "m.csv", lookup)
    assert from_xlsx == from_csv
    assert from_xlsx[-1] == {"category": "road", "township": "430382100", "lead": "d-jtj", "co": ["d-cg", "d-dx"]}


def test_the_old_excel_format_is_refused_by_name_or_by_its_bytes():
    assert "不支持旧版Excel" in errors(b"anything", "m.xls")[0]["message"]
    assert "不支持旧版Excel" in errors(b"\xd0\xcf\x11\xe0" + b"\x00" * 20, "m.bin")[0]["message"]


@pytest.mark.parametrize("data,message", [(b"", "文件为空"), (b"\x00\x01binary", "无法识别的文件格式"),
                                          (b"PK\x03\x04broken", "无法读取该xlsx文件")])
def test_unreadable_files_are_refused_with_one_error(data, message):
    [error] = errors(data, "m.csv" if not data.startswith(b"PK") else "m.xlsx")
    assert message in error["message"]


def test_headers_are_found_by_any_of_their_names_and_full_width_folding():
    header = ["问题类别", "镇街代码", "牵头单位", "协办部门"]
    rows = parse_matrix(CITY, csv_bytes([r[:4] for r in complete()], header=header), "m.csv", lookup)
    assert len(rows) == len(CATEGORIES)


def test_missing_unknown_and_repeated_headers_are_reported_on_row_one():
    found = errors(csv_bytes([["x", "住建局", "y"]], header=["类别", "类别", "部门"]))
    messages = [e["message"] for e in found]
    assert all(e["row"] == 1 for e in found)
    assert any("重复" in m for m in messages) and any("未知列「部门」" in m for m in messages)
    assert any("缺少必填列「牵头部门」" in m for m in messages)


@pytest.mark.parametrize("row,column,fragment", [
    (["马路", "", "住建局", "", ""], "类别", "未知类别「马路」"),
    (["road", "43038210", "交通局", "", ""], "镇(街道)代码", "不是9位镇(街道)代码"),
    (["road", "430521100", "交通局", "", ""], "镇(街道)代码", "不属于本市(430382)"),
    (["road", "", "", "", ""], "牵头部门", "牵头部门不能为空"),
    (["road", "430382100", "气象局", "", ""], "牵头部门", "未知部门「气象局」"),
    (["road", "430382100", "交通局", "气象局", ""], "配合部门", "未知部门「气象局」"),
    (["road", "430382100", "交通局", "交通局", ""], "配合部门", "已是牵头部门"),
])
def test_a_bad_row_is_refused_with_its_row_number_and_column(row, column, fragment):
    [error] = errors(csv_bytes(complete(row)))
    assert error["row"] == len(CATEGORIES) + 2 and error["column"] == column and fragment in error["message"]


def test_a_category_named_twice_for_the_same_scope_names_the_first_row():
    [error] = errors(csv_bytes(complete(["住房物业", "", "民政局", "", ""])))
    assert error["column"] == "类别" and "全市已由第" in error["message"]
    [error] = errors(csv_bytes(complete(["road", "430382100", "交通局", "", ""], ["road", "430382100", "城管局", "", ""])))
    assert "镇(街道) 430382100已由第" in error["message"]


def test_every_category_needs_a_city_wide_lead():
    rows = complete()[:-1]  # the last category left out
    [error] = errors(csv_bytes(rows))
    assert error["row"] is None and category_label(list(CATEGORIES)[-1]) in error["message"]


def test_a_township_row_does_not_make_up_for_a_missing_city_wide_one():
    rows = [r for r in complete() if r[0] != CATEGORIES["road"]] + [["road", "430382100", "交通局", "", ""]]
    [error] = errors(csv_bytes(rows))
    assert category_label("road") in error["message"]


def test_blank_lines_are_skipped_and_every_error_is_reported_in_row_order():
    rows = complete(["", "", "", "", ""], ["马路", "", "住建局", "", ""], ["road", "1", "交通局", "", ""])
    found = errors(csv_bytes(rows))
    assert [e["row"] for e in found] == sorted(e["row"] for e in found)
    assert len(found) == 2


@pytest.mark.parametrize("text,parts", [
    ("城管局、电信", ["城管局", "电信"]), ("城管局, 电信；民政局", ["城管局", "电信", "民政局"]),
    ("城管局 电信", ["城管局", "电信"]), ("  ", []), ("城管局/电信，", ["城管局", "电信"]),
])
def test_co_handling_departments_are_split_on_any_separator(text, parts):
    assert split_departments(text) == parts


def test_check_row_resolves_names_and_ids_and_drops_repeated_co_departments():
    row, problems = check_row(CITY, "road", None, "d-jtj", ["城管局", "d-cg", "电信"], lookup)
    assert problems == [] and row == {"category": "road", "township": None, "lead": "d-jtj", "co": ["d-cg", "d-dx"]}


def test_check_row_accepts_the_chinese_category_name():
    row, problems = check_row(CITY, CATEGORIES["road"], "430382100", "交通局", [], lookup)
    assert problems == [] and row["category"] == "road"


def test_missing_categories_are_listed_in_the_category_order():
    rows = [{"category": c, "township": None, "lead": "d-zjj"} for c in list(CATEGORIES)[1:]]
    assert missing_categories(rows) == [list(CATEGORIES)[0]]
    assert missing_categories([]) == list(CATEGORIES)


def test_a_category_label_shows_the_name_and_the_code():
    assert category_label("road") == f"{CATEGORIES['road']}(road)" and category_label("x") == "x(x)"
