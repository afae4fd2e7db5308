"""Notifications through the embedded runtime: breaches and warnings reach the right people, every channel
failing ends in a dead letter staff can see, and the real adapters (against fake providers) reach a lead by
WeCom and a resident by SMS."""
from __future__ import annotations

import json
import logging
import re

import pytest

from shared.cli import _load_demo
from shared.domain.phones import FULL_NUMBER
from shared.runtime import SERVICES, Runtime
from tests.support.fakes import FakeAliyunSms, FakeWeCom
from tests.support.notify import RESIDENT_PHONE, TOWNSHIP, Harness, Scripted, case_payload, event
from tests.support.runtime import make_settings, token


@pytest.fixture
def ali():
    with FakeAliyunSms(sign_names={"三长办"}, templates={"SMS_470000001": ["name", "tracking_no", "due_local"],
                                                         "SMS_470000002": ["name", "tracking_no", "reason"],
                                                         "SMS_470000003": ["tracking_no", "unit_name"]}) as fake:
        yield fake


ALI_TEMPLATES = {
    "case.assigned:assignee": {"code": "SMS_470000001", "params": ["name", "tracking_no", "due_local"]},
    "case.escalated:assignee": {"code": "SMS_470000002", "params": ["name", "tracking_no", "reason"]},
    "case.accepted:resident": {"code": "SMS_470000003", "params": ["tracking_no", "unit_name", "level_title"]},
}


@pytest.fixture
def runtime_with(tmp_path, clock, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    started = []

    def make(env):
        runtime = Runtime(make_settings(tmp_path, extra=env), SERVICES, clock=clock).start()
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        runtime.stop()


def routes(**kinds) -> dict:
    return {"SANZHANG_NOTIFY_ROUTES": json.dumps({"default": kinds})}


def test_embedded_system_wecom_for_the_lead_and_sms_for_the_resident(runtime_with, ali, caplog):
    from shared.web import create_app
    from tests.support.dispatch import ADDRESS, holder, posts

    with FakeWeCom() as wecom:
        env = {**wecom.env(), **ali.env(templates=ALI_TEMPLATES),
               **routes(lead=["wecom", "aliyun_sms", "console"], resident=["aliyun_sms", "console"],
                        staff=["console"])}
        system = runtime_with(env)
        assert set(system.service("notify").api["channels"]) == {"console", "wecom", "aliyun_sms"}
        web = create_app(system).test_client()
        _load_demo(system)
        lead = posts(system)["neighbourhood"]
        with caplog.at_level(logging.INFO):
            resp = web.post("/api/v1/reports", json={"township": TOWNSHIP, "address": ADDRESS, "category": "road",
                                                     "description": "路面塌陷一个坑", "reporter_phone": RESIDENT_PHONE,
                                                     "channel": "mini_program"}, headers=token(system, "client"))
            assert resp.status_code == 201 and system.drain()
            tracking = resp.json["tracking_no"]
            [to_lead] = wecom.sent
            assert to_lead["touser"] == lead["lead"]["wecom_id"] and tracking in to_lead["text"]["content"]

            case_id = __import__("shared.domain.ids", fromlist=["x"]).case_id_for(resp.json["id"])
            assert web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=holder(system, lead)).status_code == 200
            assert system.drain()
        [to_resident] = ali.sent
        assert to_resident["PhoneNumbers"] == RESIDENT_PHONE and to_resident["TemplateCode"] == "SMS_470000003"
        assert json.loads(to_resident["TemplateParam"])["tracking_no"] == tracking
        log = web.get(f"/api/v1/deliveries?township={TOWNSHIP}&case_id={case_id}",
                      headers=token(system, "staff")).json
        assert [(d["event_type"], d["channel"], d["status"]) for d in log] == [
            ("case.assigned", "wecom", "sent"), ("case.accepted", "aliyun_sms", "sent")]
        assert log[1]["phone_masked"] == "139****5678" and "to" not in log[1]
        assert wecom.problems == [] and ali.problems == []
        text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("services.notify"))
        assert "notify sent" in text and not FULL_NUMBER.search(text)
        assert not any(tok in text for tok in wecom.tokens.valid)
        assert not re.search(r"access_token=[^*&\s]", text)
def assigned(n: int, unit: str = "u-nb1", **over) -> dict:
    return event("case.assigned", case_payload(unit, case_id=f"{n:032d}", tracking_no=f"TRK{n:05d}", **over))


def test_every_channel_failing_ends_in_a_dead_letter_visible_to_staff(tmp_path):
    from shared.runtime import Runtime
    from shared.web import create_app
    from tests.support.runtime import make_settings, token

    wecom, sms = Scripted("wecom", "wecom"), Scripted("aliyun_sms", "phone")
    wecom.script, sms.script = ["fail"], ["fail"]
    h = Harness(tmp_path, routes(lead=["wecom", "aliyun_sms"]), scripted=[wecom, sms])
    h.handle(assigned(1))
    assert [d["status"] for d in h.deliveries()] == ["failed", "failed"]
    [dead] = h.service.dead.find({"township": TOWNSHIP})
    assert dead["route"] == ["wecom", "aliyun_sms"] and dead["reason"] == "isv.MOBILE_NUMBER_ILLEGAL"

    runtime = Runtime(make_settings(tmp_path / "rt"), ["notify"], clock=h.clock)
    runtime.service("notify").api["service"].dead = h.service.dead
    web = create_app(runtime).test_client()
    resp = web.get(f"/api/v1/deliveries/dead?township={TOWNSHIP}", headers=token(runtime, "staff"))
    assert resp.status_code == 200 and resp.json[0]["phone_masked"] == "138****0001"
    assert web.get(f"/api/v1/deliveries/dead?township={TOWNSHIP}",
                   headers=token(runtime, "staff", townships=("430382101",))).status_code == 404


def test_a_breach_in_the_embedded_system_reaches_old_holder_township_and_new_holder(system, web, clock):
    from tests.support.dispatch import ADDRESS, posts

    system.service("dispatch").api["sweeper"].stop()
    _load_demo(system)
    p = posts(system)
    resp = web.post("/api/v1/reports", json={"township": TOWNSHIP, "address": ADDRESS, "category": "environment",
                                             "description": "门口路灯坏了一个星期", "reporter_phone": RESIDENT_PHONE,
                                             "channel": "mini_program"}, headers=token(system, "client"))
    assert resp.status_code == 201 and system.drain()
    clock.advance(hours=2, minutes=1)  # past the 邻's 2-hour accept limit
    assert system.service("dispatch").api["sweeper"].run_once() == 1
    assert system.drain()
    log = web.get(f"/api/v1/deliveries?township={TOWNSHIP}&limit=200", headers=token(system, "staff")).json
    rows = sorted((d["event_type"], d["recipient_role"], d["recipient_name"]) for d in log)
    nb, grp = p["neighbourhood"]["lead"]["name"], p["group"]["lead"]["name"]
    # The township's staff on duty: the demo's township contact first in order of precedence.
    duty = next(c["name"] for c in system.service("dispatch").api["contact_book"].list(TOWNSHIP)
                if c["level"] == "township" and c["precedence"] == 1)
    assert rows == sorted([
        ("case.assigned", "assignee", nb),
        ("sla.breached", "previous", nb),
        ("sla.breached", "township", duty),
        ("case.escalated", "assignee", grp),
    ])
    escalated = next(d for d in log if d["event_type"] == "case.escalated")
    assert "超时未接单" in escalated["text"]


def test_a_warning_in_the_embedded_system_reaches_the_holder_and_the_post_above(system, web, clock):
    """The supervisor is found through the parent_id dispatch puts in org.contacts_changed."""
    from tests.support.dispatch import ADDRESS, posts

    system.service("dispatch").api["sweeper"].stop()
    _load_demo(system)
    p = posts(system)
    resp = web.post("/api/v1/reports", json={"township": TOWNSHIP, "address": ADDRESS, "category": "environment",
                                             "description": "门口路灯坏了一个星期", "reporter_phone": RESIDENT_PHONE,
                                             "channel": "mini_program"}, headers=token(system, "client"))
    assert resp.status_code == 201 and system.drain()
    clock.advance(minutes=91)  # 75% of the 2-hour accept limit
    assert system.service("dispatch").api["sweeper"].run_once() == 1
    assert system.drain()
    log = web.get(f"/api/v1/deliveries?township={TOWNSHIP}&limit=200", headers=token(system, "staff")).json
    warned = sorted((d["recipient_role"], d["recipient_name"]) for d in log if d["event_type"] == "sla.warning")
    assert warned == sorted([("assignee", p["neighbourhood"]["lead"]["name"]),
                             ("supervisor", p["group"]["lead"]["name"])])
    supervisor = next(d for d in log if d["recipient_role"] == "supervisor")
    assert "即将超时未接单" in supervisor["text"] and supervisor["phone_masked"].count("*") == 4
