"""Rendering notifications: every template with every category stays one SMS segment (70 characters when not
GSM-7), the elastic variable is the one shortened, overrides and the signature, and the variables a case or a
department event gives the templates."""
from __future__ import annotations

import pytest

from shared.domain.categories import CATEGORIES
from services.dispatch.transitions import BREACH_REASONS, ESCALATION_REASONS, WARNING_REASONS
from shared.domain.levels import POST_TITLES
from services.notify.templates import (DEPARTMENT_VARIABLES, DIGEST_VARIABLES, ELASTIC, SAMPLE,
                                       TEMPLATES, case_params, check_template, department_params, placeholders,
                                       render, sms_length, variables_for)

LONGEST_REASON = max({**ESCALATION_REASONS, **BREACH_REASONS, **WARNING_REASONS}.values(), key=len)


@pytest.mark.parametrize("category", sorted(CATEGORIES))
@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_template_with_every_category_fits_one_segment(key, category):
    text = render(key, {**SAMPLE, "category_name": CATEGORIES[category], "reason": LONGEST_REASON})
    length, segments = sms_length(text)
    assert segments == 1 and length <= 70, f"{key}/{category}: {length}: {text}"


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_default_template_passes_its_own_check(key):
    assert check_template(key, TEMPLATES[key]) == []


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_default_uses_only_the_variables_its_event_gives(key):
    assert set(placeholders(TEMPLATES[key])) <= variables_for(key)


@pytest.mark.parametrize("key,expected", [
    ("department.assigned:department", DEPARTMENT_VARIABLES),
    ("department.sla_breached:department", DEPARTMENT_VARIABLES),
    ("notify.digest:recipient", DIGEST_VARIABLES),
])
def test_department_and_digest_keys_have_their_own_variables(key, expected):
    assert variables_for(key) == expected


@pytest.mark.parametrize("elastic", ELASTIC)
def test_a_long_elastic_variable_is_cut_with_an_ellipsis_to_fit(elastic):
    key = {"summary": "case.assigned:assignee", "note": "case.supervised:assignee",
           "tracking_nos": "notify.digest:recipient"}[elastic]
    text = render(key, {**SAMPLE, elastic: "很长的内容" * 30})
    assert len(text) == 70 and text.endswith("…")


def test_a_text_that_fits_is_left_whole():
    text = render("case.supervised:assignee", {**SAMPLE, "note": "请今天答复"})
    assert text.endswith("请今天答复") and "…" not in text


def test_a_template_without_an_elastic_variable_is_never_cut():
    text = render("case.merged:resident", {"tracking_no": "X" * 80})
    assert "X" * 80 in text and len(text) > 70


def test_the_signature_leads_the_text_and_can_be_left_off():
    assert render("case.merged:resident", SAMPLE).startswith("【三长制】您反映的问题")
    assert render("case.merged:resident", SAMPLE, signature="清溪镇").startswith("【清溪镇】")
    assert render("case.merged:resident", SAMPLE, signature="").startswith("您反映的问题")


def test_a_longer_signature_takes_its_room_from_the_summary():
    plain = render("case.assigned:assignee", {**SAMPLE, "summary": "很长的描述" * 20})
    signed = render("case.assigned:assignee", {**SAMPLE, "summary": "很长的描述" * 20}, signature="韶山市清溪镇三长办")
    assert len(plain) == len(signed) == 70


def test_missing_and_none_variables_render_empty():
    text = render("case.merged:resident", {"tracking_no": None})
    assert "查询码）" in text
    assert "（查询码）" in render("case.merged:resident", {})


def test_an_override_replaces_the_default_and_an_empty_one_falls_back():
    overrides = {"case.merged:resident": "查询码{tracking_no}已合并"}
    assert render("case.merged:resident", SAMPLE, overrides=overrides) == "【三长制】查询码7KQ4M2XC已合并"
    assert render("case.merged:resident", SAMPLE, overrides={"case.merged:resident": ""}).startswith("【三长制】您反映")


def test_an_unknown_key_renders_nothing():
    assert render("case.nothing:nobody", SAMPLE) is None


@pytest.mark.parametrize("text,expected", [
    ("", (0, 0)), ("a", (1, 1)), ("a" * 160, (160, 1)), ("a" * 161, (161, 2)), ("a" * 306, (306, 2)),
    ("a" * 307, (307, 3)), ("字", (1, 1)), ("字" * 70, (70, 1)), ("字" * 71, (71, 2)), ("a" * 69 + "字", (70, 1)),
    ("a" * 70 + "字", (71, 2)), ("字" * 201, (201, 3)), ("字" * 202, (202, 4)), ("【三长制】", (5, 1)),
])
def test_segments_follow_gsm7_and_ucs2_limits(text, expected):
    assert sms_length(text) == expected


def test_one_non_gsm_character_makes_the_whole_text_ucs2():
    assert sms_length("a" * 100)[1] == 1 and sms_length("a" * 99 + "é")[1] == 2


def test_case_params_read_the_payload_a_case_event_carries():
    payload = {"tracking_no": "7KQ4M2XC", "category": "hazard", "summary": "桥栏杆断了", "reason": "超时未接单",
               "note": "请查看", "department_name": "住建局",
               "assignee": {"level": "group", "unit_name": "一组", "lead_name": "彭立新"},
               "previous": {"unit_name": "第1邻"}}
    params = case_params(payload, due_local="11月04日17:30", promise_local="11月05日17:30")
    assert params == {"tracking_no": "7KQ4M2XC", "category_name": CATEGORIES["hazard"], "summary": "桥栏杆断了",
                      "unit_name": "一组", "level_title": POST_TITLES["group"], "holder_name": "彭立新",
                      "from_unit": "第1邻", "reason": "超时未接单", "note": "请查看", "due_local": "11月04日17:30",
                      "promise_local": "11月05日17:30", "department_name": "住建局"}


def test_case_params_fill_what_is_missing_with_empty_text():
    params = case_params({"category": "made_up"})
    assert params["category_name"] == "made_up" and params["unit_name"] == "" and params["level_title"] == ""
    assert all(isinstance(v, str) for v in params.values())


def test_department_params_name_the_department_and_default_the_category():
    params = department_params({"department_name": "韶山市住建局", "tracking_no": "7KQ4M2XC"},
                               due_local="11月10日17:30", township_name="清溪镇")
    assert params["name"] == params["department_name"] == "韶山市住建局"
    assert params["category_name"] == "群众" and params["township"] == "清溪镇"
    assert department_params({"category": "road"})["category_name"] == CATEGORIES["road"]


@pytest.mark.parametrize("level,title", [("neighbourhood", "邻长"), ("group", "组长"), ("area", "片长")])
def test_the_level_titles_a_resident_reads(level, title):
    assert POST_TITLES[level] == title
