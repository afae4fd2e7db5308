"""End to end over the real RabbitMQ with the real clock: a township's policy of seconds lets a case
climb the whole chain on its own while the test watches."""
from __future__ import annotations

import copy
import time

from services.dispatch import sla
from shared.domain.ids import case_id_for
from shared.cli import _load_demo
from shared.messaging.topology import delete_amqp
from shared.runtime import SERVICES, Runtime, bindings
from shared.web import create_app
from tests.support.runtime import make_settings, token
from tests.support.dispatch import ADDRESS, TOWNSHIP, referral_reason


def seconds_policy(accept: str, resolve: str) -> dict:
    policy = copy.deepcopy(sla.DEFAULT_POLICY)
    for tier in policy["tiers"].values():
        for level in tier["levels"].values():
            level.update(accept=accept, resolve=resolve)
    return policy


def wait_for(fn, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_case_escalates_on_its_own_over_rabbitmq(tmp_path, amqp_url):
    runtime = Runtime(make_settings(tmp_path, amqp_url=amqp_url, timer_poll=0.1), SERVICES)  # SystemClock
    try:
        runtime.start()
        _load_demo(runtime)
        web = create_app(runtime).test_client()
        staff = token(runtime, "staff")
        put = web.put(f"/api/v1/townships/{TOWNSHIP}/sla-policy", json=seconds_policy("2s", "4s"), headers=staff)
        assert put.status_code == 200, put.json
        body = {"township": TOWNSHIP, "address": ADDRESS, "category": "environment",
                "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": "13800000001",
                "channel": "mini_program"}
        resp = web.post("/api/v1/reports", json=body, headers=token(runtime, "client"))
        assert resp.status_code == 201
        report_id = resp.json["id"]
        cases = runtime.service("dispatch").api["cases"]
        case_id = case_id_for(report_id)

        # Nobody accepts: every 2 s the next level gets it, until the township refers it on.
        doc = wait_for(lambda: (c := cases.get(case_id)) and c["status"] == "referred" and c, 30, "referral")
        climbs = [e for e in doc["timeline"] if e["type"] in ("escalated", "referred")]
        assert [e["level"] for e in climbs] == ["group", "area", "village", "township", "department"]
        assert {e["reason"] for e in climbs} == {"超时未接单"}
        assert [e["type"] for e in doc["timeline"]].count("warned") == 5
        assert len(doc["breaches"]) == 5 and doc["timer_due"] is None

        assert wait_for(lambda: referral_reason(runtime, case_id), 10, "the escalation service's record") == "超时未接单"
        reports = runtime.service("intake").api["reports"]
        view = wait_for(lambda: (r := reports.get(report_id)) and r["status"] == "referred" and r, 10,
                        "the resident's view")
        texts = [t["text"] for t in view["timeline"]]
        assert texts.count("已上报市直部门办理") == 1 and sum(t.startswith("已上报至") for t in texts) == 4
    finally:
        runtime.stop()
        delete_amqp(amqp_url, runtime.names, bindings())
