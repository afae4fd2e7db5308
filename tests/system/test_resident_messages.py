"""Fewer texts to residents, embedded: a case that climbs 邻→组→片→村→镇→department and is signed off
texts its resident three times by default (accepted, handed to the department, resolved with how to
rate), every acceptance when the township chose "every_step"; and the township's setting over HTTP."""
from __future__ import annotations

from shared.domain.ids import case_id_for
from tests.support.dispatch import ADDRESS, holder, posts
from tests.support.escalation import setup_city
from tests.support.runtime import token

TOWNSHIP = "430382100"
RESIDENT = "13912345678"
LEVELS = ("neighbourhood", "group", "area", "village", "township")


def climb_to_sign_off(system, web, clock) -> str:
    """A road report accepted and passed up at every level, referred to 交通运输局, which signs it off."""
    depts = setup_city(web)
    resp = web.post("/api/v1/reports", json={
        "township": TOWNSHIP, "address": ADDRESS, "category": "road", "description": "村口路面塌陷一个坑，晚上看不见",
        "reporter_phone": RESIDENT, "channel": "mini_program"}, headers=token(system, "client"))
    assert resp.status_code == 201, resp.json
    assert system.drain()
    case_id = case_id_for(resp.json["id"])
    p = posts(system)
    for level in LEVELS:
        clock.advance(minutes=11)   # past the rate limit's window, so every text goes out on its own
        who = holder(system, p[level])
        assert web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=who).status_code == 200
        assert system.drain()
        reason = "needs_department" if level == "township" else "beyond_ability"
        resp = web.post(f"/api/v1/cases/{case_id}/escalate", json={"reason": reason}, headers=who)
        assert resp.status_code == 200, resp.json
        assert system.drain()
    clock.advance(minutes=11)
    dept = depts["jtj"]
    assert web.post(f"/api/v1/department/cases/{case_id}/accept", json={}, headers=dept).status_code == 200
    resp = web.post(f"/api/v1/department/cases/{case_id}/sign-off", json={"resolution": "已回填塌陷路面"}, headers=dept)
    assert resp.status_code == 200, resp.json
    assert system.drain()
    return case_id


def texts_to_resident(system, case_id: str) -> list[dict]:
    notify = system.service("notify").api["service"]
    found = [d for d in notify.deliveries.find({"township": TOWNSHIP}, sort=[("created_at", 1)])
             if d["recipient_kind"] == "resident" and d.get("case_id") == case_id]
    assert all(d["to"]["phone"] == RESIDENT and d["status"] in ("sent", "delivered") for d in found)
    return found


def accepted_at_every_level(system, case_id: str) -> None:
    timeline = system.service("dispatch").api["cases"].get(case_id)["timeline"]
    assert [e["type"] for e in timeline].count("accepted") == len(LEVELS)


def test_a_case_that_climbs_to_a_department_texts_its_resident_three_times(system, web, demo, clock):
    case_id = climb_to_sign_off(system, web, clock)
    accepted_at_every_level(system, case_id)
    texts = texts_to_resident(system, case_id)
    assert [d["template_key"] for d in texts] == [
        "case.accepted:resident", "department.assigned:resident", "report.rating_requested:resident"]
    assert "第1邻邻长接单" in texts[0]["text"]
    assert "韶山市交通运输局" in texts[1]["text"]
    assert "评价" in texts[2]["text"]
    # the rest is on the tracking page
    report = web.get(f"/api/v1/reports/{texts[0]['tracking_no']}", headers=token(system, "client")).json
    assert [t["type"] for t in report["timeline"]].count("case.accepted") == len(LEVELS)


def test_every_step_texts_each_acceptance(system, web, demo, clock):
    resp = web.put(f"/api/v1/townships/{TOWNSHIP}/resident-messages", json={"policy": "every_step"},
                   headers=token(system, "staff"))
    assert resp.status_code == 200 and resp.json["policy"] == "every_step"
    case_id = climb_to_sign_off(system, web, clock)
    texts = texts_to_resident(system, case_id)
    assert [d["event_type"] for d in texts] == ["case.accepted"] * len(LEVELS) + [
        "department.assigned", "report.rating_requested"]


def test_the_setting_over_http(system, web):
    url = f"/api/v1/townships/{TOWNSHIP}/resident-messages"
    staff = token(system, "staff", name="清溪镇李干事")
    got = web.get(url, headers=staff)
    assert got.status_code == 200 and got.json["policy"] == "essential" and got.json["updated_at"] is None
    assert "关键" in got.json["description"]
    bad = web.put(url, json={"policy": "sometimes"}, headers=staff)
    assert bad.status_code == 422 and "policy" in bad.get_data(as_text=True)
    assert "essential" in bad.get_data(as_text=True)
    assert web.put(url, json={}, headers=staff).status_code == 422
    assert web.put(url, json={"policy": "essential", "extra": 1}, headers=staff).status_code == 422
    assert web.put(url, json={"policy": "every_step"}).status_code == 401
    assert web.put(url, json={"policy": "every_step"}, headers=token(system, "lead")).status_code == 403
    # another township's staff: it does not exist for them
    other = token(system, "staff", townships=("430382101",))
    assert web.put(url, json={"policy": "every_step"}, headers=other).status_code == 404
    assert web.get(url, headers=other).status_code == 404
    assert web.get("/api/v1/townships/12/resident-messages", headers=staff).status_code == 404
    done = web.put(url, json={"policy": "every_step"}, headers=staff)
    assert done.status_code == 200 and done.json["updated_by"] == "清溪镇李干事"
    assert web.get(url, headers=staff).json["policy"] == "every_step"
    # the choice is the township's own
    assert web.get("/api/v1/townships/430382101/resident-messages", headers=other).json["policy"] == "essential"
