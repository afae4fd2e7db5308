"""Notification templates: every default fits one SMS segment (70 characters when not GSM-7), segment arithmetic,
summaries shortened to fit, and template checks that name the problem."""
from __future__ import annotations

import pytest

from shared.domain.categories import CATEGORIES
from services.dispatch.transitions import BREACH_REASONS, ESCALATION_REASONS, WARNING_REASONS
from services.notify.templates import SAMPLE, TEMPLATES, check_template, render, sms_length, variables_for


LONGEST_CATEGORY = max(CATEGORIES.values(), key=len)


def realistic(key: str) -> dict:
    """The longest values the system really produces for this key's variables."""
    event_type = key.split(":")[0]
    reasons = {"sla.warning": WARNING_REASONS, "sla.breached": BREACH_REASONS,
               "case.escalated": {**ESCALATION_REASONS, **BREACH_REASONS}}.get(event_type, ESCALATION_REASONS)
    return {**SAMPLE, "category_name": LONGEST_CATEGORY, "reason": max(reasons.values(), key=len)}


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_default_template_fits_one_sms_segment(key):
    """With the default signature 【三长制】 (5 characters). A longer signature takes its extra
    characters from the room the elastic variable (summary, note, tracking numbers) has; the
    fixed parts of sla.warning:supervisor leave 2 characters to spare, the tightest of all."""
    text = render(key, realistic(key))
    length, segments = sms_length(text)
    assert segments == 1, f"{key}: {length} characters: {text}"
    assert set(variables_for(key)) >= {name for name in SAMPLE if "{" + name + "}" in TEMPLATES[key]}


def test_segment_arithmetic():
    assert sms_length("") == (0, 0)
    assert sms_length("字" * 70) == (70, 1)
    assert sms_length("字" * 71) == (71, 2)
    assert sms_length("字" * 134) == (134, 2)
    assert sms_length("字" * 135) == (135, 3)
    assert sms_length("a" * 160) == (160, 1) and sms_length("a" * 161) == (161, 2)


def test_the_summary_is_shortened_to_keep_one_segment():
    text = render("case.assigned:assignee", {**SAMPLE, "summary": "很长的描述" * 20})
    assert len(text) == 70 and text.endswith("…")
    short = render("case.assigned:assignee", {**SAMPLE, "summary": "路灯坏了"})
    assert short.endswith("路灯坏了")


@pytest.mark.parametrize("key,text,problem", [
    ("case.unknown:assignee", "x", "未知的模板"),
    ("case.assigned:assignee", "{name}您好，{phone}", "未知变量 {phone}"),
    ("case.assigned:assignee", "{name.__class__}", "写法不对"),
    ("case.assigned:assignee", "{name!r}", "格式说明"),
    ("case.assigned:assignee", "{name", "花括号"),
    ("department.assigned:department", "{holder_name}", "未知变量"),
])
def test_check_template_names_the_problem(key, text, problem):
    problems = check_template(key, text)
    assert problems and problem in problems[0]
