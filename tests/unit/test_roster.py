"""The roster importer on real files built here: xlsx through openpyxl, CSV as GBK / UTF-8 bytes."""
from __future__ import annotations

import csv
import hashlib
import io

import openpyxl
import pytest

from services.dispatch.demo_roster import demo_roster_csv
from shared.domain.demo import DEMO_TOWNSHIP
from services.dispatch.roster import (
    MAX_ERRORS,
    MAX_ROWS,
    RosterError,
    RosterRow,
    build_org,
    import_roster,
    parse_roster,
)
from tests.support.roster import HEADER, TOWNSHIP, household

def csv_bytes(rows: list[dict], encoding: str = "gbk", header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h.strip(), "") for h in header])
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def errors_of(township: str, data: bytes, filename: str) -> list[dict]:
    with pytest.raises(RosterError) as caught:
        import_roster(township, data, filename)
    return caught.value.errors


def at(column: str, row: int) -> str:
    """The cell Excel names for a HEADER column on a row ("K3")."""
    return f"{chr(ord('A') + HEADER.index(column))}{row}"


def only_error(data: bytes, filename: str = "roster.csv") -> dict:
    errors = errors_of(TOWNSHIP, data, filename)
    assert len(errors) == 1, errors
    return errors[0]


# -- reading ---------------------------------------------------------------------------------------

def test_xlsx_with_shuffled_padded_headers_builds_the_tree():
    header = ["  户主 ", "地址", "邻长企业微信", "邻", "邻长", "邻长电话", "联系电话", "重点户",
              "村（社区）", "片区", "片长", "片长电话", "村民小组", "组长", "组长电话\n", "备注"]
    lead = ["周桂香", 13873100003]  # a phone typed as a number arrives as an int
    data = xlsx_bytes([
        header,
        ["毛德生", "韶山村一组12号", "zhougx", "第1邻", *lead, "139 7320 0001", "是",
         "韶山村", "一片", "毛建华", "138-7310-0001", "一组", "彭立新", "0731-55512345", "独居"],
        [" 彭淑芬", "韶山村一组　14号", None, "第1邻", *lead, None, "否",
         "韶山村", "一片", "毛建华", "13873100001", "一组", "彭立新", "073155512345", None],
        [None] * len(header),  # formatted but empty rows are skipped
        ["周建国", "韶山村二组3号", None, "第2邻", None, None, 13973200002.0, None,
         "韶山村", "一片", "毛建华", "13873100001", "二组", None, None, None],
    ])

    org = import_roster(TOWNSHIP, data, "清溪镇花名册.xlsx")

    assert [len(org.units_at(level)) for level in ("village", "area", "group", "neighbourhood")] == [1, 1, 2, 2]
    first, second, third = org.households
    assert (first.head, first.phone, first.key_household) == ("毛德生", "13973200001", True)
    assert (second.head, second.address, second.phone, second.key_household) == ("彭淑芬", "韶山村一组 14号", None, False)
    assert third.phone == "13973200002"
    neighbourhood, group, area, village = org.chain(first.neighbourhood_id)
    assert [u.name for u in (neighbourhood, group, area, village)] == ["第1邻", "一组", "一片", "韶山村"]
    assert [u.level for u in (neighbourhood, group, area, village)] == ["neighbourhood", "group", "area", "village"]
    assert (neighbourhood.lead.name, neighbourhood.lead.phone, neighbourhood.lead.wecom_id) == \
        ("周桂香", "13873100003", "zhougx")
    assert group.lead.phone == "0731-55512345"
    assert area.lead.phone == "13873100001" and area.lead.wecom_id is None
    assert village.parent_id is None and village.lead is None and village.township == TOWNSHIP
    assert org.chain(third.neighbourhood_id)[1].lead is None  # 二组 has no 组长 yet: a vacancy


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-8"])
def test_csv_in_every_encoding_excel_writes(encoding):
    data = csv_bytes([household("毛德生", 12, 重点户="Y"), household("彭淑芬", 14, 联系电话="13973200001")],
                     encoding)
    if encoding == "gbk":
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")  # the fixture really is GBK, not UTF-8 in disguise

    org = import_roster(TOWNSHIP, data, "roster.CSV")

    assert [(h.head, h.address, h.phone, h.key_household) for h in org.households] == [
        ("毛德生", "韶山村一组12号", None, True), ("彭淑芬", "韶山村一组14号", "13973200001", False)]
    assert {u.name for u in org.units.values()} == {"韶山村", "一片", "一组", "第1邻"}


@pytest.mark.parametrize("filename", ["", "roster", "roster.txt"])
def test_format_is_sniffed_when_the_name_does_not_tell(filename):
    rows = [household("毛德生", 12)]
    from_xlsx = import_roster(TOWNSHIP, xlsx_bytes([HEADER, [rows[0].get(h, "") for h in HEADER]]), filename)
    from_csv = import_roster(TOWNSHIP, csv_bytes(rows), filename)
    assert from_xlsx == from_csv
    assert len(from_csv.households) == 1


def test_parse_roster_returns_rows_with_spreadsheet_row_numbers():
    rows = parse_roster(csv_bytes([household("毛德生", 12), {}, household("彭淑芬", 14, 重点户="1")]), "r.csv")
    assert [(r.row, r.head, r.key_household) for r in rows] == [(2, "毛德生", False), (4, "彭淑芬", True)]
    assert "13873100001" not in repr(rows[0])  # phones stay out of reprs, so out of logs


def test_ids_follow_the_documented_formula():
    org = import_roster(TOWNSHIP, csv_bytes([household("毛德生", 12)]), "r.csv")

    def sha(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]

    village, = org.units_at("village")
    neighbourhood, = org.units_at("neighbourhood")
    assert village.id == "u-" + sha("430382100|韶山村")
    assert neighbourhood.id == "u-" + sha("430382100|韶山村|一片|一组|第1邻")
    assert org.households[0].id == "h-" + sha("430382100|韶山村|一片|一组|第1邻|毛德生|韶山村一组12号")


def test_reimport_keeps_ids_and_takes_the_new_lead_phone():
    rows = [household("毛德生", 12), household("彭淑芬", 14)]
    first = import_roster(TOWNSHIP, csv_bytes(rows), "r.csv")
    again = import_roster(TOWNSHIP, xlsx_bytes([HEADER] + [[r.get(h, "") for h in HEADER] for r in rows]), "r.xlsx")
    assert again == first

    updated = [{**r, "组长电话": "13873109999"} for r in rows]
    changed = import_roster(TOWNSHIP, csv_bytes(updated), "r.csv")

    assert changed.units.keys() == first.units.keys()
    assert [h.id for h in changed.households] == [h.id for h in first.households]
    group, = changed.units_at("group")
    assert group.lead.phone == "13873109999"


def test_vacant_posts_and_leads_named_once_per_block_are_accepted():
    vacant = {"邻长": "", "邻长电话": "", "邻长企业微信": ""}
    rows = [household("毛德生", 12),
            household("彭淑芬", 14, 片长="", 片长电话="", 片长企业微信="", 组长="", 组长电话=""),  # lead on row 2 only
            household("周建国", 3, 邻="第2邻", **vacant), household("李长庚", 5, 邻="第2邻", **vacant)]

    org = import_roster(TOWNSHIP, csv_bytes(rows), "r.csv")

    leads = {u.name: u.lead for u in org.units.values()}
    assert leads["第2邻"] is None
    assert leads["一片"].name == "毛建华" and leads["一片"].wecom_id == "maojianhua"
    assert leads["一组"].name == "彭立新"


def test_demo_roster_parses_cleanly():
    data = demo_roster_csv()
    data.decode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")

    org = import_roster(DEMO_TOWNSHIP, data, "demo.csv")

    assert [u.name for u in org.units_at("village")] == ["韶山村", "银田村"]
    assert [len(org.units_at(level)) for level in ("area", "group", "neighbourhood")] == [4, 8, 16]
    assert 32 <= len(org.households) <= 48
    assert any(h.key_household for h in org.households)
    vacant = [u for u in org.units.values() if u.level != "village" and u.lead is None]
    assert [(u.level, [c.name for c in org.chain(u.id)]) for u in vacant] == \
        [("neighbourhood", ["第2邻", "四组", "二片", "银田村"])]


# -- whole-file errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("data, filename, message", [
    (b"", "r.csv", "文件为空"),
    (b"", "r.xlsx", "文件为空"),
    (b"\r\n , \r\n", "r.csv", "文件为空"),
    (",".join(HEADER).encode("gbk") + b"\r\n", "r.csv", "文件没有数据行"),
    (b"not a zip at all", "r.xlsx", "无法读取该xlsx文件"),
    (b"PK\x03\x04 truncated zip", "upload", "无法读取该xlsx文件"),
    (b"\x80\xff\xfe\x81", "r.csv", "无法识别CSV文件的编码"),
    ("户主,地址".encode("utf-16"), "r.csv", "无法识别的文件格式"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "roster.xls", "不支持旧版Excel"),
])
def test_unusable_files_are_refused_with_one_error(data, filename, message):
    error = only_error(data, filename)
    assert error["message"].startswith(message)
    assert error["row"] in (1, 2) and error["column"] is None


def test_header_only_xlsx_has_no_data_rows():
    assert only_error(xlsx_bytes([HEADER]), "r.xlsx") == {"row": 2, "column": None, "cell": None, "message": "文件没有数据行"}


def test_the_header_is_found_below_blank_rows_and_errors_keep_the_sheets_numbers():
    data = xlsx_bytes([[None], HEADER, [household("毛德生", 12, 地址="")[h] for h in HEADER]])
    assert only_error(data, "r.xlsx") == {"row": 3, "column": "地址", "cell": at("地址", 3),
                                          "message": "「地址」不能为空"}


def test_missing_and_repeated_columns_are_reported_on_row_one():
    header = [h for h in HEADER if h not in ("片长电话", "地址")] + ["邻长"]
    errors = errors_of(TOWNSHIP, csv_bytes([household("毛德生", 12)], header=header), "r.csv")
    where = "（按第1行作为表头读取；表头须是一行，每列一个列名）"
    assert errors == [
        {"row": 1, "column": "邻长", "cell": "P1", "message": "列「邻长」重复出现"},
        {"row": 1, "column": "片长电话", "cell": None, "message": f"缺少必填列「片长电话」{where}"},
        {"row": 1, "column": "地址", "cell": None, "message": f"缺少必填列「地址」{where}"},
    ]


def test_optional_columns_may_be_left_out():
    header = [h for h in HEADER if h not in ("重点户", "片长企业微信", "组长企业微信", "邻长企业微信")]
    org = import_roster(TOWNSHIP, csv_bytes([household("毛德生", 12, 重点户="是")], header=header), "r.csv")
    assert org.households[0].key_household is False
    assert org.units_at("area")[0].lead.wecom_id is None


def test_more_than_max_rows_is_refused_and_max_rows_is_not():
    line = ",".join(household("毛德生", 12).get(h, "") for h in HEADER).encode("gbk") + b"\r\n"
    head = ",".join(HEADER).encode("gbk") + b"\r\n"

    assert len(parse_roster(head + line * MAX_ROWS, "r.csv")) == MAX_ROWS
    with pytest.raises(RosterError) as caught:
        parse_roster(head + line * (MAX_ROWS + 1), "r.csv")
    assert caught.value.errors == [{"row": 1, "column": None, "cell": None,
                                    "message": "花名册超过100000行的上限，请按村（社区）拆分后分别导入"}]


# -- row errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("column", ["村(社区)", "片区", "村民小组", "邻", "户主", "地址"])
def test_empty_required_cell(column):
    data = csv_bytes([household("毛德生", 12), household("彭淑芬", 14, **{column: "  "})])
    assert only_error(data) == {"row": 3, "column": column, "cell": at(column, 3),
                                 "message": f"「{column}」不能为空"}


@pytest.mark.parametrize("column, value", [
    ("片长电话", "1387310000"),       # one digit short
    ("组长电话", "12873100002"),      # no mainland mobile starts 12
    ("邻长电话", "0731-0551234"),     # a local number never starts with 0
    ("联系电话", "138731000011"),
    ("联系电话", "电话138"),
])
def test_malformed_phone_is_reported_without_echoing_the_number(column, value):
    data = csv_bytes([household("毛德生", 12, **{column: value})])
    error = only_error(data)
    assert (error["row"], error["column"]) == (2, column)
    assert error["message"].startswith("电话号码格式不正确")
    assert value not in error["message"]


@pytest.mark.parametrize("cells, column, message", [
    ({"片长电话": ""}, "片长电话", "填了片长姓名，但没有片长电话"),
    ({"邻长": ""}, "邻长", "填了邻长的电话或企业微信，但没有邻长姓名"),
    ({"组长": "", "组长电话": "", "组长企业微信": "pengln"}, "组长", "填了组长的电话或企业微信，但没有组长姓名"),
    ({"邻长企业微信": "周桂香"}, "邻长企业微信", "企业微信账号格式不正确（只能包含字母、数字和_-@.）"),
    ({"重点户": "五保"}, "重点户", "重点户只能填“是”或“否”（也可填Y/N、1/0或留空）"),
    ({"户主": "毛|德生"}, "户主", "「户主」不能包含“|”"),
])
def test_inconsistent_cells_in_a_row(cells, column, message):
    data = csv_bytes([household("毛德生", 12), household("彭淑芬", 14, **cells)])
    assert only_error(data) == {"row": 3, "column": column, "cell": at(column, 3), "message": message}


# -- rules across rows -----------------------------------------------------------------------------

def test_neighbourhood_under_two_groups():
    data = csv_bytes([household("毛德生", 12), household("彭淑芬", 14, 村民小组="二组", 组长="张跃进")])
    assert only_error(data) == {
        "row": 3, "column": "村民小组", "cell": at("村民小组", 3),
        "message": "邻「第1邻」（邻长周桂香）在第2行属于「韶山村/一片/一组」，这里却属于「韶山村/一片/二组」；"
                   "同一邻不能属于两个村民小组"}


def test_group_under_two_areas():
    data = csv_bytes([household("毛德生", 12), household("彭淑芬", 14, 片区="二片", 片长="彭红梅", 邻="第2邻",
                                                           邻长="", 邻长电话="")])
    error = only_error(data)
    assert (error["row"], error["column"]) == (3, "片区")
    assert error["message"].startswith("村民小组「一组」（组长彭立新）在第2行属于「韶山村/一片」，这里却属于「韶山村/二片」")


def test_area_under_two_villages():
    other_village = {"村(社区)": "银田村", "村民小组": "三组", "组长": "", "组长电话": "", "邻长": "", "邻长电话": ""}
    data = csv_bytes([household("毛德生", 12), household("彭淑芬", 14, **other_village)])
    error = only_error(data)
    assert (error["row"], error["column"]) == (3, "村(社区)")
    assert error["message"].endswith("同一片区不能属于两个村(社区)")


def test_numbered_units_may_repeat_under_different_parents():
    # Every village has a 一片 and every group a 第1邻: with different leads they are different units.
    rows = [household("毛德生", 12),
            household("胡长青", 1, **{"村(社区)": "银田村", "片长": "胡志刚", "片长电话": "13873100011",
                                    "片长企业微信": "", "组长": "文建平", "组长电话": "13873100012",
                                    "邻长": "胡秀兰", "邻长电话": "13873100013"})]
    org = import_roster(TOWNSHIP, csv_bytes(rows), "r.csv")
    assert len(org.units_at("neighbourhood")) == 2
    assert len({org.chain(h.neighbourhood_id)[-1].name for h in org.households}) == 2


@pytest.mark.parametrize("cells, column, message", [
    ({"邻长": "李春生"}, "邻长", "邻「第1邻」的邻长与第2行不一致（「周桂香」和「李春生」），同一岗位只能有一位邻长"),
    ({"组长电话": "13873109999"}, "组长电话", "组长「彭立新」的电话与第2行不一致"),
    ({"片长企业微信": "maojh"}, "片长企业微信", "片长「毛建华」的企业微信账号与第2行不一致"),
])
def test_one_post_given_two_leads(cells, column, message):
    data = csv_bytes([household("毛德生", 12), household("彭淑芬", 14, **cells)])
    assert only_error(data) == {"row": 3, "column": column, "cell": at(column, 3), "message": message}


def test_same_household_twice_in_a_neighbourhood():
    data = csv_bytes([household("毛德生", 12), household("毛德生", 12, 联系电话="13973200001")])
    assert only_error(data) == {"row": 3, "column": "户主", "cell": at("户主", 3),
                                "message": "与第2行是同一邻下的同一户（户主和地址相同）"}


def test_all_errors_are_collected_in_row_order():
    rows = [household("毛德生", 12, 重点户="?"), household("", 14, 片长电话="123"),
            household("周建国", 15, 邻长="李春生"), household("李长庚", 16)]
    errors = errors_of(TOWNSHIP, csv_bytes(rows), "r.csv")
    assert [(e["row"], e["column"]) for e in errors] == [(2, "重点户"), (3, "户主"), (3, "片长电话"), (4, "邻长")]


def test_errors_are_capped():
    rows = [household(f"户{n}", n, 联系电话="12345") for n in range(MAX_ERRORS + 50)]
    with pytest.raises(RosterError) as caught:
        import_roster(TOWNSHIP, csv_bytes(rows), "r.csv")
    assert len(caught.value.errors) == MAX_ERRORS
    assert caught.value.truncated
    assert caught.value.errors[-1]["row"] == MAX_ERRORS + 1
    assert str(caught.value) == "花名册有误，列出200处错误（错误过多，只列出前200处）"


def test_build_org_checks_rows_built_by_hand():
    row = RosterRow(row=2, village=" 韶山村", area="一片", area_lead="", area_lead_phone="", group="一组",
                    group_lead="彭立新", group_lead_phone="138 7310 0002", neighbourhood="第1邻",
                    neighbourhood_lead="", neighbourhood_lead_phone="", head="毛德生", address="韶山村一组12号")
    org = build_org(TOWNSHIP, [row])
    assert org.units_at("village")[0].name == "韶山村"
    assert org.units_at("group")[0].lead.phone == "13873100002"

    with pytest.raises(RosterError) as caught:
        build_org(TOWNSHIP, [RosterRow(**{**row.__dict__, "address": ""})])
    # Rows built by hand have no sheet behind them: no cell to name.
    assert caught.value.errors == [{"row": 2, "column": "地址", "cell": None, "message": "「地址」不能为空"}]


@pytest.mark.parametrize("township", ["43038210", "4303821000", "43038210x", "４３０３８２１００", 430382100])
def test_township_must_be_a_nine_digit_code(township):
    with pytest.raises(ValueError):
        import_roster(township, csv_bytes([household("毛德生", 12)]), "r.csv")


# -- normalisation: the phone and address rules are the kernel's (tests/unit/test_kernel_phones.py,
#    tests/unit/test_kernel_rules.py).
