"""Roster cells as spreadsheets really hold them, built in memory with openpyxl: numbers typed as numbers,
booleans, full-width text and padding, blank rows, the key-household flag's spellings, and the ids the tree
derives from names (phone normalisation itself is the kernel's and tested there)."""
from __future__ import annotations

import io

import openpyxl
import pytest

from services.dispatch.roster import RosterError, household_id, import_roster, parse_roster, unit_id
from shared.domain.addresses import normalise_address
from shared.domain.spreadsheet import cell_text as _cell_text
from tests.support.roster import HEADER, TOWNSHIP, household


def xlsx(rows: list[dict], header: list[str] = HEADER) -> bytes:
    book = openpyxl.Workbook()
    book.active.append(header)
    for row in rows:
        book.active.append([row.get(h) for h in header])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("value,text", [
    (None, ""), (12, "12"), (12.0, "12"), (12.5, "12.5"), (13873100001.0, "13873100001"), (True, "是"),
    (False, "否"), ("  一组 ", "一组"), ("第1邻", "第1邻"),
])
def test_a_cell_becomes_text_as_a_person_typed_it(value, text):
    assert _cell_text(value) == text


@pytest.mark.parametrize("raw,folded", [
    ("韶山村一组12号", "韶山村一组12号"), ("韶山村一组１２号", "韶山村一组12号"), ("  韶山村  一组 ", "韶山村 一组"),
    ("一组\u3000", "一组"), ("村（社区）", "村(社区)"), ("Ａ栋", "A栋"), ("", ""), ("\t\n", ""),
])
def test_text_is_folded_to_half_width_and_single_spaces(raw, folded):
    assert normalise_address(raw) == folded


def test_an_xlsx_with_numbers_typed_as_numbers_reads_like_the_csv():
    rows = [household("毛德生", 12, 联系电话=13973200001.0, 重点户=True)]
    org = import_roster(TOWNSHIP, xlsx(rows), "roster.xlsx")
    [home] = org.households
    assert home.key_household and home.phone == "13973200001"


def test_full_width_names_name_the_same_units_as_half_width_ones():
    plain = import_roster(TOWNSHIP, xlsx([household("毛德生", 12)]), "r.xlsx")
    wide = import_roster(TOWNSHIP, xlsx([household("毛德生", 12, 村民小组="一组\u3000", 邻="第１邻")]), "r.xlsx")
    assert sorted(plain.units) == sorted(wide.units)
    assert wide.households[0].neighbourhood_id == plain.households[0].neighbourhood_id


def test_blank_rows_between_households_are_skipped_and_row_numbers_kept():
    book = openpyxl.Workbook()
    book.active.append(HEADER)
    book.active.append([household("毛德生", 12).get(h) for h in HEADER])
    book.active.append([None] * len(HEADER))
    book.active.append([household("彭淑芬", 14).get(h) for h in HEADER])
    out = io.BytesIO()
    book.save(out)
    rows = parse_roster(out.getvalue(), "r.xlsx")
    assert [r.row for r in rows] == [2, 4]


@pytest.mark.parametrize("flag,key", [("是", True), ("Y", True), ("y", True), ("1", True), (1, True),
                                      ("否", False), ("N", False), ("0", False), ("", False), (None, False)])
def test_the_key_household_flag_accepts_its_spellings(flag, key):
    [home] = import_roster(TOWNSHIP, xlsx([household("毛德生", 12, 重点户=flag)]), "r.xlsx").households
    assert home.key_household is key


@pytest.mark.parametrize("flag", ["也许", "2", "yes please"])
def test_any_other_key_household_flag_is_refused_on_its_row(flag):
    with pytest.raises(RosterError) as caught:
        import_roster(TOWNSHIP, xlsx([household("毛德生", 12, 重点户=flag)]), "r.xlsx")
    [error] = caught.value.errors
    assert error["row"] == 2 and "重点户" in error["column"]


def test_ids_depend_on_the_path_and_the_township_only():
    assert unit_id(TOWNSHIP, "韶山村", "一片") == unit_id(TOWNSHIP, "韶山村", "一片")
    assert unit_id(TOWNSHIP, "韶山村", "一片") != unit_id("430382101", "韶山村", "一片")
    assert unit_id(TOWNSHIP, "韶山村") != unit_id(TOWNSHIP, "韶山村", "一片")
    assert unit_id(TOWNSHIP, "韶山村").startswith("u-") and len(unit_id(TOWNSHIP, "韶山村")) == 18
    hid = household_id(TOWNSHIP, "韶山村", "一片", "一组", "第1邻", "毛德生", "韶山村一组12号")
    assert hid.startswith("h-") and hid != household_id(TOWNSHIP, "韶山村", "一片", "一组", "第1邻", "毛德生",
                                                         "韶山村一组13号")
