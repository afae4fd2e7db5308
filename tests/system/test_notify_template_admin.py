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
from tests.support.runtime import ADMIN_HEADERS, make_settings, token
from tests.support.notify import MONDAY_9AM, TOWNSHIP, Harness, case_payload, event

LONGEST_CATEGORY = max(CATEGORIES.values(), key=len)


def test_delivery_log_records_length_and_segments(tmp_path):
    h = Harness(tmp_path)
    h.handle(event("case.assigned", case_payload(summary="路灯坏了")))
    [d] = h.deliveries()
    assert (d["length"], d["segments"]) == (len(d["text"]), 1)


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
