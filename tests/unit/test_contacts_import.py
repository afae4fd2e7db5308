"""Village committees' and township staff's contacts (services/dispatch/contacts.py, contact_book.py):
the file with Chinese headers, its second-sheet form inside the roster workbook, every kind of bad row
named in Chinese, nothing written from a bad file, idempotent re-import, the JSON API's checks, and the
directory dispatch publishes to notify."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import openpyxl
import pytest

from services.dispatch.contact_book import ContactBook, ContactConflict
from services.dispatch.contacts import (ContactsError, contacts_sheet, parse_contacts, preview_posts,
                                       village_units)
from services.dispatch.roster import import_roster
from shared.domain.reachability import routes_for, unreachable_posts
from services.dispatch.demo_roster import demo_contacts_csv, demo_roster_csv, load_demo
from services.dispatch.org import OrgRepository
from services.dispatch.roster import RosterError
from shared.clock import FakeClock
from tests.support.fakes.memory_store import MemoryStore
from tests.support.roster import HEADER, household

TOWNSHIP = "430382100"
VILLAGES = village_units(TOWNSHIP, ["韶山村", "银田村"])
COLUMNS = ["村(社区)", "姓名", "职务", "电话", "企业微信", "顺序"]
GOOD = [["韶山村", "毛建国", "值班", "13873300001", "maojianguo", ""],
        ["韶山村", "彭志强", "书记", "13873300002", "", ""],
        ["", "刘晓东", "值班", "", "liuxiaodong", "1"]]


def as_csv(rows, header=COLUMNS, encoding="utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue().encode(encoding)


def parse(data: bytes, filename="contacts.csv"):
    return parse_contacts(data, filename, TOWNSHIP, VILLAGES, "清溪镇")


def errors_of(data: bytes) -> list[tuple[int, str | None, str]]:
    with pytest.raises(ContactsError) as caught:
        parse(data)
    return [(e["row"], e["column"], e["message"]) for e in caught.value.errors]


def test_a_good_file_gives_each_contact_its_post_and_order():
    contacts = parse(as_csv(GOOD, encoding="gbk"))
    assert [(c.level, c.unit_name, c.name, c.duty, c.precedence) for c in contacts] == [
        ("village", "韶山村", "毛建国", "值班", 1), ("village", "韶山村", "彭志强", "书记", 2),
        ("township", "清溪镇", "刘晓东", "值班", 1)]
    assert contacts[0].unit_id == VILLAGES["韶山村"] and contacts[2].unit_id == "t-" + TOWNSHIP
    assert contacts[0].phone == "13873300001" and contacts[2].phone is None and contacts[2].wecom_id == "liuxiaodong"
    assert "13873300001" not in repr(contacts[0])


def test_headers_in_any_order_with_padding_and_optional_columns_left_out():
    data = as_csv([["13873300001", "毛建国", "韶山村"]], header=["电话 ", "姓 名", "村（社区）"])
    [c] = parse(data)
    assert (c.name, c.duty, c.precedence, c.wecom_id) == ("毛建国", "值班", 1, None)


def test_reading_the_same_file_again_names_the_same_contacts():
    assert [c.id for c in parse(as_csv(GOOD))] == [c.id for c in parse(as_csv(GOOD))]


@pytest.mark.parametrize("row,column,words", [
    (["红星村", "毛建国", "值班", "13873300001", "", ""], "村(社区)", "不在花名册中"),
    (["韶山村", "", "值班", "13873300001", "", ""], "姓名", "不能为空"),
    (["韶山村", "毛建国", "值班", "1387330", "", ""], "电话", "电话号码格式不正确"),
    (["韶山村", "毛建国", "值班", "", "毛 建国", ""], "企业微信", "企业微信账号格式不正确"),
    (["韶山村", "毛建国", "值班", "", "", ""], "电话", "至少填一项"),
    (["韶山村", "毛建国", "值班", "13873300001", "", "第一"], "顺序", "1到999的整数"),
    (["韶山村", "毛建国", "值班|书记", "13873300001", "", ""], "职务", "不能包含"),
])
def test_every_bad_cell_is_named_with_its_row_and_column(row, column, words):
    [(number, col, message)] = errors_of(as_csv([row]))
    assert number == 2 and col == column and words in message
    assert "1387330" not in message  # the value itself stays out of messages that reach logs


def test_the_same_person_twice_at_one_post_is_refused_with_the_first_row():
    [(number, column, message)] = errors_of(as_csv([GOOD[0], GOOD[1], GOOD[0]]))
    assert (number, column) == (4, "姓名") and "第2行" in message


@pytest.mark.parametrize("header,words", [
    (["姓名", "电话"], "缺少必填列「村(社区)」"),
    (["村(社区)", "姓名", "职务"], "至少要有其中一列"),
    (["村(社区)", "姓名", "姓名", "电话"], "重复出现"),
])
def test_a_bad_header_is_refused(header, words):
    assert any(words in m for _, _, m in errors_of(as_csv([], header=header)))


@pytest.mark.parametrize("data,words", [(b"", "文件为空"), (as_csv([]), "没有数据行"),
                                        (b"\xd0\xcf\x11\xe0rest", "不支持旧版Excel")])
def test_an_empty_or_unreadable_file_is_refused_whole(data, words):
    [(_, _, message)] = errors_of(data)
    assert words in message


# -- the contacts sheet of a roster workbook -----------------------------------------------------

def workbook(contact_rows, sheet_name="村委会及镇干部", roster_rows=None) -> bytes:
    book = openpyxl.Workbook()
    roster = book.active
    roster.title = "花名册"
    roster.append(HEADER)
    for row in roster_rows or [household("毛德生", 12), household("彭淑芬", 14)]:
        roster.append([row.get(h, "") for h in HEADER])
    if contact_rows is not None:
        sheet = book.create_sheet(sheet_name)
        sheet.append(COLUMNS)
        for row in contact_rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_the_contacts_sheet_is_found_by_its_name_and_read_by_the_one_reader():
    found = contacts_sheet(workbook(GOOD[:1], sheet_name="联系人"))
    assert found is not None and found[1] == "联系人"
    [c] = parse(found[0], "x.xlsx")
    assert c.name == "毛建国"


def test_a_workbook_without_a_contacts_sheet_or_a_csv_has_none():
    assert contacts_sheet(workbook(None)) is None
    assert contacts_sheet(workbook(GOOD, sheet_name="Sheet2")) is None
    assert contacts_sheet(demo_roster_csv()) is None


@pytest.fixture
def org():
    return OrgRepository(MemoryStore(), FakeClock(datetime(2026, 11, 2, tzinfo=timezone.utc)), lambda *a: None)


def last_directory(org) -> dict:
    docs = sorted(org.imports.collection.find({"township": TOWNSHIP}), key=lambda d: d["at"])
    return [e for d in docs for e in d.get("outbox") or []][-1]["payload"]


def test_importing_the_workbook_stores_roster_and_contacts_and_publishes_both(org):
    answer = org.import_roster(TOWNSHIP, workbook(GOOD), "roster.xlsx", actor="staff")
    assert answer["counts"]["contacts"] == 3 and answer["counts"]["household"] == 2
    posts = {p["unit_name"]: p for p in last_directory(org)["posts"] if p["level"] in ("village", "township")}
    assert [p["name"] for p in posts["韶山村"]["people"]] == ["毛建国", "彭志强"]
    assert [p["name"] for p in posts[TOWNSHIP]["people"]] == ["刘晓东"]


def test_re_importing_the_same_workbook_duplicates_nothing(org):
    org.import_roster(TOWNSHIP, workbook(GOOD), "roster.xlsx", actor="staff")
    first = sorted(c["_id"] for c in org.post_contacts.find({"township": TOWNSHIP}))
    org.import_roster(TOWNSHIP, workbook(GOOD), "roster.xlsx", actor="staff")
    assert sorted(c["_id"] for c in org.post_contacts.find({"township": TOWNSHIP})) == first


def test_a_bad_contacts_sheet_refuses_the_whole_workbook_and_writes_nothing(org):
    with pytest.raises(ContactsError) as caught:
        org.import_roster(TOWNSHIP, workbook([["红星村", "毛建国", "", "13873300001", "", ""]]), "r.xlsx", actor="staff")
    assert caught.value.errors[0]["sheet"] == "村委会及镇干部" and caught.value.errors[0]["row"] == 2
    assert org.units.find({"township": TOWNSHIP}) == [] and org.post_contacts.find({"township": TOWNSHIP}) == []


def test_a_bad_roster_is_refused_before_its_contacts_are_read(org):
    with pytest.raises(RosterError):
        org.import_roster(TOWNSHIP, workbook(GOOD, roster_rows=[household("毛德生", 12, 地址="")]), "r.xlsx",
                          actor="staff")
    assert org.post_contacts.find({"township": TOWNSHIP}) == []


def test_a_roster_without_contacts_keeps_them_and_a_village_gone_takes_its_own(org):
    org.import_roster(TOWNSHIP, workbook(GOOD), "roster.xlsx", actor="staff")
    org.import_roster(TOWNSHIP, workbook(None), "roster.xlsx", actor="staff")
    assert len(org.post_contacts.find({"township": TOWNSHIP})) == 3
    other = [household("文立华", 6, **{"村(社区)": "银田村"})]
    org.import_roster(TOWNSHIP, workbook(None, roster_rows=other), "roster.xlsx", actor="staff")
    assert [c["name"] for c in org.post_contacts.find({"township": TOWNSHIP})] == ["刘晓东"]


# -- the contact book: the file on its own, one by one, reachability ----------------------------

def test_the_demo_reaches_someone_at_every_post(org):
    book = ContactBook(org)
    load_demo(org, book)
    assert book.reachability(TOWNSHIP) == []
    assert len(book.list(TOWNSHIP)) == len(list(csv.reader(io.StringIO(demo_contacts_csv().decode("gbk"))))) - 1


def test_without_contacts_the_villages_and_the_township_are_unreachable(org):
    book = ContactBook(org)
    org.ensure_township(TOWNSHIP, "清溪镇")
    org.import_roster(TOWNSHIP, demo_roster_csv(), "demo.csv", actor="demo")
    rows = book.reachability(TOWNSHIP)
    assert sorted((r["level"], r["unit_name"]) for r in rows) == [
        ("township", "清溪镇"), ("village", "银田村"), ("village", "韶山村")]
    sms = ContactBook(org, '{"default": {"lead": ["aliyun_sms"]}}')
    landline_only = [r for r in sms.reachability(TOWNSHIP) if r["level"] not in ("village", "township")]
    assert landline_only == []  # every demo lead has a mobile


def test_one_by_one_add_update_delete_each_republishing_the_directory(org):
    book = ContactBook(org)
    org.ensure_township(TOWNSHIP, "清溪镇")
    org.import_roster(TOWNSHIP, demo_roster_csv(), "demo.csv", actor="demo")
    added = book.add(TOWNSHIP, {"village": "韶山村", "name": "毛建国", "phone": "138 7330 0001"}, actor="staff")
    assert (added["phone"], added["precedence"], added["duty"]) == ("13873300001", 1, "值班")
    with pytest.raises(ContactConflict):
        book.add(TOWNSHIP, {"village": "韶山村", "name": "毛建国", "wecom_id": "mjg"}, actor="staff")
    second = book.add(TOWNSHIP, {"village": "韶山村", "name": "彭志强", "wecom_id": "pzq"}, actor="staff")
    assert second["precedence"] == 2
    book.update(TOWNSHIP, added["_id"], {"village": "韶山村", "name": "毛建国", "duty": "书记", "phone": "13873300009",
                                         "precedence": 3}, actor="staff")
    people = next(p for p in last_directory(org)["posts"] if p["unit_name"] == "韶山村")["people"]
    assert [(p["name"], p["duty"]) for p in people] == [("彭志强", "值班"), ("毛建国", "书记")]
    book.delete(TOWNSHIP, second["_id"], actor="staff")
    assert [c["name"] for c in book.list(TOWNSHIP)] == ["毛建国"]


def test_a_renamed_contact_keeps_its_id_and_its_old_name_is_free_again(org):
    book = ContactBook(org)
    org.ensure_township(TOWNSHIP, "清溪镇")
    first = book.add(TOWNSHIP, {"name": "刘晓东", "phone": "13873300005"}, actor="staff")
    other = book.add(TOWNSHIP, {"name": "谭振宇", "phone": "13873300006"}, actor="staff")
    with pytest.raises(ContactConflict):
        book.update(TOWNSHIP, other["_id"], {"name": "刘晓东", "phone": "13873300006"}, actor="staff")
    renamed = book.update(TOWNSHIP, first["_id"], {"name": "刘小东", "phone": "13873300005"}, actor="staff")
    assert renamed["_id"] == first["_id"] and renamed["name"] == "刘小东" and renamed["precedence"] == 1
    again = book.add(TOWNSHIP, {"name": "刘晓东", "wecom_id": "lxd"}, actor="staff")
    assert again["_id"] != first["_id"]
    assert sorted(c["name"] for c in book.list(TOWNSHIP)) == ["刘小东", "刘晓东", "谭振宇"]


def test_the_book_refuses_bad_values_and_other_townships_contacts(org):
    book = ContactBook(org)
    org.ensure_township(TOWNSHIP, "清溪镇")
    with pytest.raises(ContactsError) as caught:
        book.add(TOWNSHIP, {"village": "韶山村", "name": "毛建国", "phone": "12"}, actor="staff")
    assert {e["column"] for e in caught.value.errors} == {"村(社区)", "电话"}  # no roster yet: no 韶山村
    added = book.add(TOWNSHIP, {"village": None, "name": "刘晓东", "phone": "13873300005"}, actor="staff")
    with pytest.raises(LookupError):
        book.delete("430382101", added["_id"], actor="staff")
    with pytest.raises(LookupError):
        book.update(TOWNSHIP, "c-nosuch", {"name": "x", "phone": "13873300005"}, actor="staff")
    assert book.reachability(TOWNSHIP) == []


def test_a_roster_read_but_not_stored_gives_the_same_posts_for_the_preview(org):
    data = workbook(GOOD[:1])
    roster_org = import_roster(TOWNSHIP, data, "roster.xlsx")
    sheet, _ = contacts_sheet(data)
    contacts = parse(sheet, "c.xlsx")
    routes = routes_for(None, TOWNSHIP)
    preview = unreachable_posts(preview_posts(roster_org, contacts, "清溪镇"), routes)
    assert [(r["level"], r["unit_name"]) for r in preview] == [("township", "清溪镇")]
    org.ensure_township(TOWNSHIP, "清溪镇")
    org.import_roster(TOWNSHIP, data, "roster.xlsx", actor="staff")
    assert ContactBook(org).reachability(TOWNSHIP) == preview
    assert len(unreachable_posts(preview_posts(roster_org, None, "清溪镇"), routes)) == 2
