"""Rosters as township offices keep them (issue 13): title rows, merged 村/片/组 cells, phones typed
as numbers, hidden columns and rows, totals and notes rows, WPS files — built here with openpyxl."""
from __future__ import annotations

import pytest

from services.dispatch.roster import SCIENTIFIC_PHONE, MARKER_ROW, RosterError, import_roster, load_roster
from tests.support.ledgers import BLOCKS, ledger, wps_xlsx
from tests.support.roster import HEADER, TOWNSHIP, household


def errors_of(data: bytes, filename: str = "台账.xlsx") -> list[dict]:
    with pytest.raises(RosterError) as caught:
        import_roster(TOWNSHIP, data, filename)
    return caught.value.errors


def row_of(cells: dict) -> list:
    return [cells.get(h) for h in HEADER]


def test_an_office_ledger_imports_whole():
    loaded = load_roster(TOWNSHIP, ledger(), "台账.xlsx")
    org = loaded.org
    assert sorted(h.head for h in org.households) == sorted(h for b in BLOCKS for h, _, _ in b["households"])
    # Every household of a merged block sits under its block's neighbourhood, whose lead came from the merge.
    leads = {u.name: u.lead for u in org.units_at("neighbourhood")}
    assert leads["第1邻"].name == "周桂香" and leads["第1邻"].phone == "13873100003"
    assert leads["第2邻"].phone == "13873100004"  # written with dashes
    assert org.units_at("area")[0].lead.wecom_id == "maojianhua"  # a hidden column is read
    by_head = {h.head: h for h in org.households}
    assert by_head["毛德生"].phone == "13800000001"  # 13800000001.0, a float, without its .0
    assert by_head["彭淑芬"].phone == "13800000002"
    assert org.chain(by_head["文淑华"].neighbourhood_id)[0].name == "第2邻"


def test_what_the_reader_did_is_reported_in_the_sheets_numbers():
    notices = load_roster(TOWNSHIP, ledger(hidden_row=4), "台账.xlsx").notices
    messages = [n["message"] for n in notices]
    assert messages[0] == "表头在第2行，上方1行（标题等）未导入"
    assert "O列「片长企业微信」在Excel中被隐藏，仍照常读取" in messages
    assert "第4行在Excel中被隐藏，仍照常导入；不需要的行请删除" in messages
    skipped = [n["row"] for n in notices if "合计或备注行" in n["message"]]
    assert skipped == [8, 9, 10]  # totals, 填表说明, 制表人: none of them became a household


def test_a_ledger_without_title_or_notes_has_nothing_to_report():
    notices = load_roster(TOWNSHIP, ledger(title=None, hidden_column=None, totals=False, notes=False),
                          "台账.xlsx").notices
    assert notices == []


def test_an_error_on_a_merged_cell_names_the_cell_and_the_merge():
    blocks = [{**BLOCKS[0], "邻长电话": "1387310000"}, BLOCKS[1]]  # one digit short, merged over rows 3-5
    errors = errors_of(ledger(blocks=blocks))
    assert [(e["row"], e["cell"]) for e in errors] == [(3, "J3"), (4, "J4"), (5, "J5")]
    assert errors[0]["message"].startswith("电话号码格式不正确")
    assert errors[1]["message"].endswith("（此格在Excel中与J3合并，取的是J3的内容）")


def test_a_phone_excel_wrote_in_scientific_notation_is_refused_not_guessed():
    rows = [household("毛德生", 12, 联系电话="1.38E+10"), household("彭淑芬", 14, 联系电话="1.3800000002E10")]
    lines = [",".join(HEADER)] + [",".join(r.get(h, "") for h in HEADER) for r in rows]
    errors = errors_of(("\r\n".join(lines) + "\r\n").encode("gbk"), "台账.csv")
    # 1.38E+10 lost eight digits; 1.3800000002E10 kept all eleven and is a number like any other.
    assert errors == [{"row": 2, "column": "联系电话", "cell": "M2", "message": SCIENTIFIC_PHONE}]


def test_a_totals_row_in_the_middle_is_named_not_imported_nor_dropped():
    extra = [["小计", None, None, None, None, None, None, None, None, None, "3户"],
             row_of(household("周建国", 21, 邻="第2邻", 邻长="胡秀兰", 邻长电话="13873100004"))]
    errors = errors_of(ledger(blocks=[BLOCKS[0]], extra_rows=extra, totals=False))
    assert errors == [{"row": 6, "column": None, "cell": None, "message": MARKER_ROW}]


def test_a_header_below_a_title_without_a_required_column_says_which_row_was_read():
    header = [h for h in HEADER if h != "地址"]
    data = wps_xlsx([["清溪镇联户台账"], header, [household("毛德生", 12)[h] for h in header]], merges=("A1:P1",))
    errors = errors_of(data)
    assert errors == [{"row": 2, "column": "地址", "cell": None,
                       "message": "缺少必填列「地址」（按第2行作为表头读取；表头须是一行，每列一个列名）"}]


def test_a_sheet_without_any_header_says_so_on_its_first_row():
    errors = errors_of(wps_xlsx([["清溪镇联户台账"], ["韶山村", "毛德生"]]))
    assert errors[0]["row"] == 1
    assert errors[0]["message"].endswith("（第1行不像表头：前几行中没有找到列名）")


def test_a_wps_file_with_inline_strings_and_merges_reads_like_an_excel_one():
    top = household("毛德生", 12)
    below = {h: None for h in HEADER} | {"户主": "彭淑芬", "地址": "韶山村一组14号"}
    merges = ("A1:Q1",) + tuple(f"{c}3:{c}4" for c in "ABCDEFGHIJ")
    data = wps_xlsx([["清溪镇联户台账"], HEADER, [top[h] for h in HEADER], [below[h] for h in HEADER]],
                    merges=merges, hidden_rows=(4,))
    loaded = load_roster(TOWNSHIP, data, "wps.xlsx")
    assert len(loaded.org.households) == 2
    assert len(loaded.org.units_at("neighbourhood")) == 1
    assert any(n["message"].startswith("第4行在Excel中被隐藏") for n in loaded.notices)
