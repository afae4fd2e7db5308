"""Which posts nobody can be reached at (shared/domain/reachability.py): what each channel needs of a
person, vacancies passed by, village committees and township staff always counted, the routes read as
notify reads them."""
from __future__ import annotations

import json

import pytest

from shared.domain.reachability import (NO_CONTACT, kind_of, reachable_by, reaches, routes_for,
                                        unreachable_posts)

MOBILE = {"name": "毛建国", "phone": "13873300001"}
LANDLINE = {"name": "村部", "phone": "0731-55512345"}
WECOM = {"name": "胡立平", "wecom_id": "hulipin"}
NOBODY = {"name": "无号码"}
LEAD_ROUTES = {"lead": ("console",), "staff": ("console",)}


@pytest.mark.parametrize("channel,person,reached", [
    ("aliyun_sms", MOBILE, True), ("aliyun_sms", LANDLINE, False), ("aliyun_sms", WECOM, False),
    ("tencent_sms", MOBILE, True), ("tencent_sms", LANDLINE, False),
    ("wecom", WECOM, True), ("wecom", MOBILE, False),
    ("wechat_mp", MOBILE, False), ("wechat_mp", {"openid": "o-1"}, True),
    # the console needs what a real channel would: a mobile or a WeCom id, never nothing
    ("console", MOBILE, True), ("console", WECOM, True), ("console", LANDLINE, False), ("console", NOBODY, False),
    ("console", None, False),
])
def test_what_each_channel_needs(channel, person, reached):
    assert reaches(channel, person) is reached


def test_a_route_reaches_whom_any_of_its_channels_reaches():
    assert reachable_by(("aliyun_sms", "wecom"), WECOM)
    assert not reachable_by(("aliyun_sms",), WECOM)
    assert not reachable_by((), MOBILE)


def test_the_township_is_routed_as_staff_every_other_post_as_a_lead():
    assert kind_of("township") == "staff"
    assert [kind_of(level) for level in ("village", "area", "group", "neighbourhood")] == ["lead"] * 4


def post(unit_id, level, *people, name="韶山村"):
    return {"unit_id": unit_id, "level": level, "unit_name": name, "people": list(people)}


def test_a_vacant_lead_post_is_not_listed_it_holds_no_case():
    assert unreachable_posts([post("u-nb", "neighbourhood", name="第2邻")], LEAD_ROUTES) == []


@pytest.mark.parametrize("level,title", [("village", "村(社区)两委"), ("township", "镇(街道)工作人员")])
def test_a_village_committee_or_the_township_without_contacts_is_listed(level, title):
    [row] = unreachable_posts([post("u-v", level)], LEAD_ROUTES)
    assert row == {"unit_id": "u-v", "level": level, "unit_name": "韶山村", "title": title,
                   "channels": ["console"], "reason": NO_CONTACT}


def test_people_whom_no_enabled_channel_reaches_are_listed_with_what_is_missing():
    routes = {"lead": ("aliyun_sms",), "staff": ("wecom",)}
    rows = unreachable_posts([post("u-nb", "neighbourhood", LANDLINE, name="第1邻"),
                              post("t-1", "township", MOBILE, name="清溪镇"),
                              post("u-v", "village", MOBILE, WECOM)], routes)
    assert [(r["unit_id"], r["title"]) for r in rows] == [("u-nb", "邻长"), ("t-1", "镇(街道)工作人员")]
    assert "手机号" in rows[0]["reason"] and "aliyun_sms" in rows[0]["reason"]
    assert "企业微信账号" in rows[1]["reason"] and rows[1]["channels"] == ["wecom"]


def test_one_reachable_person_is_enough():
    assert unreachable_posts([post("u-v", "village", NOBODY, LANDLINE, WECOM)], LEAD_ROUTES) == []


def test_routes_are_read_as_notify_reads_them():
    table = {"default": {"lead": ["wecom", "console"], "resident": ["aliyun_sms"]},
             "430382100": {"staff": ["aliyun_sms"]}}
    assert routes_for(json.dumps(table), "430382100") == {"lead": ("wecom", "console"), "staff": ("aliyun_sms",)}
    assert routes_for(json.dumps(table), "430382101") == {"lead": ("wecom", "console"), "staff": ("console",)}


@pytest.mark.parametrize("raw", [None, "", "not json", "[1, 2]", '{"default": ["wecom"]}', '{"default": {"lead": []}}'])
def test_no_or_unreadable_routes_mean_the_console(raw):
    assert routes_for(raw, "430382100") == {"lead": ("console",), "staff": ("console",)}
