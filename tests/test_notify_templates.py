"""Templates: every default fits one SMS segment with realistic values; lengths and segments are
measured and logged; per-township overrides through the admin API, validated with the field named."""
from __future__ import annotations

import pytest

from shared.domain.categories import CATEGORIES
from services.dispatch.transitions import BREACH_REASONS, ESCALATION_REASONS, WARNING_REASONS
from services.notify.templates import SAMPLE, TEMPLATES, check_template, render, sms_length, variables_for
from shared.clock import FakeClock
from shared.runtime import Runtime
from shared.web import create_app
from tests.conftest import ADMIN_HEADERS, make_settings, token
from tests.test_notify_helpers import MONDAY_9AM, TOWNSHIP, Harness, case_payload, event

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


def test_delivery_log_records_length_and_segments(tmp_path):
    h = Harness(tmp_path)
    h.handle(event("case.assigned", case_payload(summary="路灯坏了")))
    [d] = h.deliveries()
    assert (d["length"], d["segments"]) == (len(d["text"]), 1)


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


# ---------------------------------------------------------------- the admin API


@pytest.fixture
def api(tmp_path):
    clock = FakeClock(MONDAY_9AM)
    runtime = Runtime(make_settings(tmp_path), ["notify"], clock=clock)
    yield runtime, create_app(runtime).test_client(), runtime.service("notify").api["service"]
    for store in runtime.stores.values():
        store.close()


URL = f"/api/v1/townships/{TOWNSHIP}/templates"


def test_staff_read_their_townships_templates(api):
    runtime, web, _ = api
    resp = web.get(URL, headers=token(runtime, "staff"))
    assert resp.status_code == 200
    rows = {r["key"]: r for r in resp.json["templates"]}
    assert set(rows) == set(TEMPLATES)
    row = rows["case.assigned:assignee"]
    assert row["override"] is None and "summary" in row["variables"] and row["segments"] == 1
    assert row["sample"].startswith("【三长制】")


@pytest.mark.parametrize("who,status", [("other_staff", 404), ("lead", 403), ("none", 401), ("operator", 200)])
def test_template_access(api, who, status):
    runtime, web, _ = api
    headers = {"other_staff": token(runtime, "staff", townships=("430382101",)), "lead": token(runtime, "lead"),
               "none": {}, "operator": ADMIN_HEADERS}[who]
    assert web.get(URL, headers=headers).status_code == status
    assert web.put(URL, json={"templates": {}}, headers=headers).status_code == status


def test_an_override_is_used_for_the_next_message_and_null_restores_the_default(api):
    runtime, web, service = api
    staff = token(runtime, "staff", name="综治办")
    text = "{name}：新诉求{tracking_no}待接单，{due_local}前办结。"
    resp = web.put(URL, json={"templates": {"case.assigned:assignee": text}}, headers=staff)
    assert resp.status_code == 200, resp.json
    row = next(r for r in resp.json["templates"] if r["key"] == "case.assigned:assignee")
    assert row["override"] == text and row["sample"] == "【三长制】周桂香：新诉求7KQ4M2XC待接单，11月04日17:30前办结。"
    assert resp.json["updated_by"] == "综治办"
    service.on_contacts_changed(event("org.contacts_changed", {"leads": []}))
    service.on_case_event(event("case.assigned", case_payload()))
    assert service.deliveries.find({})[0]["text"] == "【三长制】周桂香：新诉求7KQ4M2XC待接单，11月04日17:30前办结。"
    # other townships keep the default
    service.on_case_event(event("case.assigned", case_payload(case_id="2" * 32), township="430382101"))
    assert "待您接单" in service.deliveries.find({"township": "430382101"})[0]["text"]
    resp = web.put(URL, json={"templates": {"case.assigned:assignee": None}}, headers=staff)
    assert next(r for r in resp.json["templates"] if r["key"] == "case.assigned:assignee")["override"] is None


@pytest.mark.parametrize("body,field", [
    ({"templates": {"case.nope:assignee": "x"}}, "case.nope:assignee"),
    ({"templates": {"case.assigned:assignee": "{name}{reporter_phone}"}}, "case.assigned:assignee"),
    ({"templates": {"sla.warning:supervisor": "{name.__init__}"}}, "sla.warning:supervisor"),
    ({"templates": {"case.resolved:resident": "{"}}, "case.resolved:resident"),
    ({"templates": {"case.resolved:resident": "好" * 301}}, "case.resolved:resident"),
    ({"templates": {}, "signature": "x"}, "signature"),
    ({}, "templates"),
])
def test_bad_overrides_are_refused_with_the_field_named_and_nothing_stored(api, body, field):
    runtime, web, service = api
    resp = web.put(URL, json=body, headers=token(runtime, "staff"))
    assert resp.status_code == 422
    errors = resp.json["errors"]["json"]
    assert field in errors or field in errors.get("templates", {}), errors
    assert service.templates.get(TOWNSHIP) is None


def test_a_bad_township_code_is_not_found(api):
    runtime, web, _ = api
    assert web.get("/api/v1/townships/43/templates", headers=ADMIN_HEADERS).status_code == 404
