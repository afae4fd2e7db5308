"""The first whole slice, embedded: a report reaches the right 邻长, the resident sees who has it,
notify records the text — with validation, tenancy, vacancies and idempotency."""
from __future__ import annotations

import json
import logging
import re

import pytest

from shared.cli import _load_demo
from shared.events import make_event
from shared.domain.phones import FULL_NUMBER
from tests.support.runtime import ADMIN_HEADERS, token

TOWNSHIP = "430382100"


@pytest.fixture
def demo(system):
    return _load_demo(system)


def client(system):
    return token(system, "client")


def report_body(**kw):
    body = {"township": TOWNSHIP, "category": "environment", "description": "门口路灯坏了一个星期",
            "reporter_phone": "13800000001", "channel": "mini_program"}
    body.update(kw)
    return body


def org(system):
    return system.service("dispatch").api["org"]


def households_by_neighbourhood(system):
    hh = org(system).households.find({"township": TOWNSHIP})
    units = {u["_id"]: u for u in org(system).tree(TOWNSHIP)}
    return hh, units


def test_report_reaches_its_neighbourhood_lead_and_the_resident_sees_who(system, web, demo):
    hh, units = households_by_neighbourhood(system)
    staffed = next(h for h in hh if units[h["neighbourhood_id"]].get("lead"))
    lead = units[staffed["neighbourhood_id"]]["lead"]
    resp = web.post("/api/v1/reports", json=report_body(address=staffed["address"]), headers=client(system))
    assert resp.status_code == 201, resp.json
    report_id, tracking = resp.json["id"], resp.json["tracking_no"]
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", tracking)
    assert system.drain()

    view = web.get(f"/api/v1/reports/{tracking}", headers=client(system)).json
    assert view["id"] == report_id
    assert view["status"] == "assigned" and view["level"] == "neighbourhood"
    assert view["handler"]["name"] == lead["name"]
    assert view["handler"]["phone"] == lead["phone"][:3] + "****" + lead["phone"][-4:]
    assert view["reporter_phone"] == "138****0001"
    assert [t["type"] for t in view["timeline"]] == ["submitted", "case.assigned"]
    assert view["expected_at"]

    log = web.get(f"/api/v1/deliveries?township={TOWNSHIP}", headers=token(system, "staff")).json
    assert len(log) == 1
    entry = log[0]
    assert entry["recipient_name"] == lead["name"] and entry["status"] == "delivered"
    assert tracking in entry["text"] and "待您接单" in entry["text"]
    assert entry["phone_masked"].count("*") == 4


def test_vacant_neighbourhood_goes_to_the_group_lead(system, web, demo):
    hh, units = households_by_neighbourhood(system)
    vacant = next(h for h in hh if not units[h["neighbourhood_id"]].get("lead"))
    group = units[units[vacant["neighbourhood_id"]]["parent_id"]]
    resp = web.post("/api/v1/reports", json=report_body(household_id=vacant["_id"]), headers=client(system))
    assert resp.status_code == 201
    assert system.drain()
    view = web.get(f"/api/v1/reports/{resp.json['id']}", headers=client(system)).json
    assert view["level"] == "group" and view["handler"]["name"] == group["lead"]["name"]
    case = system.service("dispatch").api["cases"].get(
        __import__("shared.domain.ids", fromlist=["x"]).case_id_for(resp.json["id"]))
    assert "岗位空缺" in case["timeline"][-1]["reason"]


def test_registered_phone_locates_the_household(system, web, demo):
    hh, units = households_by_neighbourhood(system)
    with_phone = next(h for h in hh if h.get("phone") and units[h["neighbourhood_id"]].get("lead"))
    resp = web.post("/api/v1/reports", json=report_body(reporter_phone=with_phone["phone"]), headers=client(system))
    assert system.drain()
    view = web.get(f"/api/v1/reports/{resp.json['id']}", headers=client(system)).json
    assert view["handler"]["unit_name"] == units[with_phone["neighbourhood_id"]]["name"]


def test_unlocatable_report_goes_to_the_township(system, web, demo):
    resp = web.post("/api/v1/reports", json=report_body(address="不存在的地址99号", reporter_phone="13999999999"),
                    headers=client(system))
    assert system.drain()
    view = web.get(f"/api/v1/reports/{resp.json['id']}", headers=client(system)).json
    assert view["level"] == "township"


@pytest.mark.parametrize("change,field", [
    ({"reporter_phone": "12345"}, "reporter_phone"),
    ({"category": "unicorns"}, "category"),
    ({"description": "短"}, "description"),
    ({"description": "长" * 2001}, "description"),
    ({"township": "4303"}, "township"),
    ({"status": "resolved"}, "status"),          # mass assignment
    ({"assignee": "me"}, "assignee"),
    ({"photos": ["ftp://x/y.jpg"]}, "photos"),
    ({"location": {"lat": 100, "lng": 1}}, "location"),
    ({"channel": "carrier-pigeon"}, "channel"),
])
def test_bad_reports_are_refused_with_the_field_named_and_nothing_stored(system, web, change, field):
    before = system.service("intake").api["reports"].collection.count()
    resp = web.post("/api/v1/reports", json=report_body(address="韶山村一组1号", **change), headers=client(system))
    assert resp.status_code == 422
    assert field in resp.json["errors"]["json"]
    assert system.service("intake").api["reports"].collection.count() == before


def test_missing_fields_malformed_json_and_no_credential(system, web):
    resp = web.post("/api/v1/reports", json={"township": TOWNSHIP}, headers=client(system))
    assert resp.status_code == 422
    assert {"category", "description", "reporter_phone", "channel"} <= set(resp.json["errors"]["json"])
    resp = web.post("/api/v1/reports", data="{oops", content_type="application/json", headers=client(system))
    assert resp.status_code == 400 and resp.is_json
    assert web.post("/api/v1/reports", json=report_body(address="韶山村一组1号")).status_code == 401
    bad = {"Authorization": "Bearer sz1.forged.token"}
    assert web.post("/api/v1/reports", json=report_body(address="韶山村一组1号"), headers=bad).status_code == 401


def test_oversized_body_is_413(system, web):
    resp = web.post("/api/v1/reports", data=b"x" * (system.settings.max_body + 1),
                    content_type="application/json", headers=client(system))
    assert resp.status_code == 413 and resp.is_json


def test_a_township_never_sees_another_townships_report(system, web, demo):
    resp = web.post("/api/v1/reports", json=report_body(address="韶山村一组1号"), headers=client(system))
    rid = resp.json["id"]
    other = token(system, "client", townships=("430382101",))
    assert web.get(f"/api/v1/reports/{rid}", headers=other).status_code == 404
    assert web.get(f"/api/v1/reports/{resp.json['tracking_no']}", headers=other).status_code == 404
    # Nor submit in its name.
    assert web.post("/api/v1/reports", json=report_body(address="韶山村一组1号"), headers=other).status_code == 404
    other_staff = token(system, "staff", townships=("430382101",))
    assert web.get(f"/api/v1/deliveries?township={TOWNSHIP}", headers=other_staff).status_code == 404
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/org", headers=other_staff).status_code == 404
    assert web.get(f"/api/v1/reports/{rid}", headers=ADMIN_HEADERS).status_code == 200


def test_the_same_event_delivered_five_times_makes_one_case_and_one_notification(system, demo):
    hh, units = households_by_neighbourhood(system)
    staffed = next(h for h in hh if units[h["neighbourhood_id"]].get("lead"))
    payload = {"report_id": "r" * 32, "tracking_no": "ABCD2345", "category": "road", "tier": None,
               "description": "路面塌陷一个坑", "channel": "phone", "household_id": staffed["_id"],
               "submitted_at": "2026-11-02T01:00:00.000000Z"}
    event = make_event("report.submitted", TOWNSHIP, payload, at=system.clock.now(), correlation_id="r" * 32)
    for _ in range(5):
        system.relay.publisher.publish([event])
    assert system.drain()
    cases = system.service("dispatch").api["cases"].collection
    assert cases.count({"report_id": "r" * 32}) == 1
    deliveries = system.service("notify").api["service"].deliveries
    assigned = [d for d in deliveries.find({"case_id": cases.find({"report_id": "r" * 32})[0]["_id"]})]
    assert len(assigned) == 1 and assigned[0]["event_type"] == "case.assigned"


def test_poison_message_is_dead_lettered_in_the_embedded_bus(system):
    system.bus.append([("report.submitted", "poison-1", "{broken")])
    assert system.drain()
    [dead] = system.bus.dead("dispatch")
    assert dead["body"] == "{broken" and dead["reason"].startswith("undecodable")
    assert system.bus.pending() == 0


def test_no_full_phone_number_in_logs(system, web, demo, caplog):
    from shared.privacy import PhoneMaskingFilter

    caplog.handler.addFilter(PhoneMaskingFilter())
    with caplog.at_level(logging.INFO):
        web.post("/api/v1/reports", json=report_body(address="韶山村一组1号", reporter_phone="13912345678"),
                 headers=client(system))
        assert system.drain()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "console" in text  # the console channel did log the message it sent
    assert not FULL_NUMBER.search(text)


def test_health_ready_and_openapi(system, web):
    assert web.get("/healthz").json["status"] == "ok"
    ready = web.get("/readyz")
    assert ready.status_code == 200 and all(ready.json["checks"].values())
    spec = web.get("/openapi.json").json
    assert "/api/v1/reports" in spec["paths"] and "/api/v1/deliveries" in spec["paths"]
    assert "/api/v1/townships/{code}/roster" in spec["paths"]
