"""/metrics exposes what operators watch, counted once per stored event."""
from __future__ import annotations

import re

from shared.cli import _load_demo
from tests.support.runtime import token


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_follow_a_report_through_the_system(system, web):
    demo = _load_demo(system)
    before = web.get("/metrics").get_data(as_text=True)
    resp = web.post("/api/v1/reports", headers=token(system, "client"), json={
        "township": "430382100", "address": demo["address"], "category": "road",
        "description": "村口道路塌陷一个大坑", "reporter_phone": "13800000001", "channel": "phone"})
    assert resp.status_code == 201
    assert system.drain()
    text = web.get("/metrics").get_data(as_text=True)
    assert metric(text, "sanzhang_reports_received_total", channel="phone") - \
        metric(before, "sanzhang_reports_received_total", channel="phone") == 1
    assert metric(text, "sanzhang_events_consumed_total", service="dispatch", type="report.submitted", result="ok") >= 1
    assert metric(text, "sanzhang_events_published_total", type="case.assigned") >= 1
    assert metric(text, "sanzhang_cases", status="assigned") >= 1
    assert metric(text, "sanzhang_open_cases", level="neighbourhood") >= 1
    assert metric(text, "sanzhang_outbox_backlog") == 0
    assert "sanzhang_handler_seconds_bucket" in text
    assert metric(text, "sanzhang_notifications_total", channel="console") - \
        metric(before, "sanzhang_notifications_total", channel="console") >= 1


def test_breach_escalation_is_counted_once(system, web, clock):
    demo = _load_demo(system)
    before = web.get("/metrics").get_data(as_text=True)
    web.post("/api/v1/reports", headers=token(system, "client"), json={
        "township": "430382100", "address": demo["address"], "category": "environment",
        "description": "垃圾桶满了没人清运", "reporter_phone": "13800000001", "channel": "phone"})
    assert system.drain()
    clock.advance(hours=3)  # past the 邻长's 2-hour accept limit
    sweeper = system.service("dispatch").api["sweeper"]
    sweeper.run_once()
    sweeper.run_once()  # a second sweep finds nothing stale to count again
    assert system.drain()
    text = web.get("/metrics").get_data(as_text=True)
    assert metric(text, "sanzhang_sla_breaches_total", level="neighbourhood", kind="accept") - \
        metric(before, "sanzhang_sla_breaches_total", level="neighbourhood", kind="accept") == 1
    assert metric(text, "sanzhang_escalations_total", from_level="neighbourhood", cause="sla") - \
        metric(before, "sanzhang_escalations_total", from_level="neighbourhood", cause="sla") == 1
