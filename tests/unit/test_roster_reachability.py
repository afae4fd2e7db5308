"""The dry run's posts nobody could reach (OrgRepository.preview_roster): the roster's leads, a post
kept vacant by a red card, and the village committees' and township staff's contacts — from the
workbook's contacts sheet, or the stored ones when the workbook has none. The rule itself is
shared.domain.reachability's (tests/unit/test_reachability.py)."""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import openpyxl
import pytest

from services.dispatch.org import OrgRepository
from shared.clock import FakeClock
from tests.support.fakes.memory_store import MemoryStore
from tests.support.roster import HEADER, TOWNSHIP, household

COLUMNS = ["村(社区)", "姓名", "职务", "电话", "企业微信", "顺序"]
CONTACTS = [["韶山村", "毛建国", "值班", "13873300001", "", ""], ["", "刘晓东", "值班", "13873300009", "", "1"]]


def workbook(rows, contacts=None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append([row.get(h, "") for h in HEADER])
    if contacts is not None:
        extra = book.create_sheet("联系人")
        extra.append(COLUMNS)
        for row in contacts:
            extra.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def repo(routes: dict | None = None) -> OrgRepository:
    clock = FakeClock(datetime(2026, 11, 2, tzinfo=timezone.utc))
    return OrgRepository(MemoryStore(), clock, lambda *a: None, json.dumps(routes) if routes else None)


def unreachable(org: OrgRepository, data: bytes) -> dict[str, str]:
    preview = org.preview_roster(TOWNSHIP, data, "roster.xlsx")
    assert preview["summary"]["unreachable_posts"] == len(preview["changes"]["unreachable_posts"])
    return {row["unit_name"]: row["reason"] for row in preview["changes"]["unreachable_posts"]}


def test_with_every_contact_a_mobile_nobody_is_listed():
    assert unreachable(repo(), workbook([household("毛德生", 12)], CONTACTS)) == {}


def test_a_landline_only_lead_and_a_village_without_contacts_are_listed_with_the_reason():
    found = unreachable(repo(), workbook([household("毛德生", 12, 邻长电话="0731-55512345")]))
    assert set(found) == {"第1邻", "韶山村", TOWNSHIP}
    assert "手机号" in found["第1邻"] and found["韶山村"] == "未登记联系人"


def test_the_channels_come_from_notifys_routes():
    wecom_only = {"default": {"lead": ["wecom"], "staff": ["wecom"]}}
    found = unreachable(repo(wecom_only), workbook([household("毛德生", 12)], CONTACTS))
    # Every lead and contact has a mobile and none a WeCom id: under WeCom alone nobody is reached.
    assert {"第1邻", "一组", "韶山村", TOWNSHIP} <= set(found)
    assert "一片" not in found  # the area lead has a WeCom id in the shared row


def test_without_a_contacts_sheet_the_stored_contacts_count():
    org = repo()
    org.import_roster(TOWNSHIP, workbook([household("毛德生", 12)], CONTACTS), "roster.xlsx", actor="staff")
    assert unreachable(org, workbook([household("毛德生", 12), household("彭淑芬", 14)])) == {}


def test_a_post_kept_vacant_by_a_red_card_is_a_vacancy_not_an_unreachable_post():
    org = repo()
    data = workbook([household("毛德生", 12, 邻长电话="0731-55512345")], CONTACTS)
    org.import_roster(TOWNSHIP, data, "roster.xlsx", actor="staff")
    [post] = [u for u in org.units.find({"township": TOWNSHIP}) if u["level"] == "neighbourhood"]
    org.vacate(post["_id"], actor="staff", reason="红牌")
    preview = org.preview_roster(TOWNSHIP, data, "roster.xlsx")
    assert preview["changes"]["unreachable_posts"] == []
    assert [v["unit_id"] for v in preview["changes"]["vacancies"]] == [post["_id"]]


@pytest.mark.parametrize("contacts, changed", [(CONTACTS, False), (CONTACTS[:1], True)])
def test_re_importing_writes_only_when_the_roster_or_its_contacts_differ(contacts, changed):
    org = repo()
    org.import_roster(TOWNSHIP, workbook([household("毛德生", 12)], CONTACTS), "roster.xlsx", actor="staff")
    again = org.import_roster(TOWNSHIP, workbook([household("毛德生", 12)], contacts), "roster.xlsx", actor="staff")
    assert again["changed"] is changed
