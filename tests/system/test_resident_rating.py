"""Ratings (群众评单), reopening and follow-up calls (回访): who may rate, once per resolution, 不满意
reopens the case once at the level that resolved it and then goes to the township for a ruling, and
a resolution left unrated for the township's number of days becomes a follow-up task (injected clock)."""
from __future__ import annotations

import pytest

from services.dispatch import department_events
from shared.domain.ids import case_id_for
from shared.cli import _load_demo
from shared.events import make_event
from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.dispatch import holder, posts

TOWNSHIP = "430382100"
OTHER = "430382101"
ADDRESS = "韶山村一组12号"     # 韶山村/一片/一组/第1邻, 邻长 周桂香


@pytest.fixture
def demo(system):
    system.service("dispatch").api["sweeper"].stop()   # SLA timers fired by hand, never by the clock
    system.service("intake").api["followup_sweeper"].stop()
    return _load_demo(system)


@pytest.fixture
def published(system):
    """Every event the relay publishes, in order."""
    seen: list[dict] = []
    publisher = system.relay.publisher
    original = publisher.publish

    def spy(events):
        original(events)
        seen.extend(events)

    publisher.publish = spy
    yield seen
    publisher.publish = original


def client(system, township=TOWNSHIP):
    return token(system, "client", townships=(township,))


def submit(system, web, phone="13973200001", description="门口路灯坏了一个星期，晚上出行不安全") -> dict:
    resp = web.post("/api/v1/reports", json={"township": TOWNSHIP, "category": "environment", "address": ADDRESS,
                                             "description": description, "reporter_phone": phone,
                                             "channel": "mini_program"}, headers=client(system))
    assert resp.status_code == 201, resp.json
    assert system.drain()
    return resp.json


def act(web, headers, case_id, action, body=None):
    resp = web.post(f"/api/v1/cases/{case_id}/{action}", json=body or {}, headers=headers)
    assert resp.status_code == 200, resp.json
    return resp.json


def resolve(system, web, case_id, who, note="已更换灯泡，路灯恢复照明"):
    act(web, who, case_id, "accept")
    act(web, who, case_id, "resolve", {"note": note})
    assert system.drain()


def rate(web, system, ref, rating, last4="0001", comment=None, headers=None):
    body = {"rating": rating, "phone_last4": last4}
    if comment:
        body["comment"] = comment
    return web.post(f"/api/v1/reports/{ref}/rating", json=body, headers=headers or client(system))


def case(system, case_id):
    return system.service("dispatch").api["cases"].get(case_id)


def view(web, system, ref):
    return web.get(f"/api/v1/reports/{ref}", headers=client(system)).json


def of_type(events, kind):
    return [e for e in events if e["type"] == kind]


# -- who may rate, and how often ------------------------------------------------------------------------
def test_only_the_resident_rates_and_once_per_resolution(system, web, demo, published):
    report = submit(system, web)
    case_id = case_id_for(report["id"])
    lead = holder(system, posts(system)["neighbourhood"])
    early = rate(web, system, report["tracking_no"], "满意")
    assert early.status_code == 409 and "尚未办结" in early.json["message"]
    resolve(system, web, case_id, lead)
    assert view(web, system, report["id"])["can_rate"] is True

    tracking = report["tracking_no"]
    assert rate(web, system, tracking, "满意", last4="9999").status_code == 404        # not the reporter
    assert rate(web, system, tracking, "满意", headers=client(system, OTHER)).status_code == 404
    assert rate(web, system, "ZZZZ9999", "满意").status_code == 404
    assert rate(web, system, tracking, "满意", headers=token(system, "staff")).status_code == 403
    assert rate(web, system, tracking, "满意", headers=lead).status_code == 403        # the lead cannot rate itself
    assert web.post(f"/api/v1/reports/{tracking}/rating", json={"rating": "满意"}).status_code == 401
    bad = rate(web, system, tracking, "还行")
    assert bad.status_code == 422 and "rating" in bad.json["errors"]["json"]

    resp = rate(web, system, tracking, "基本满意", comment="修得挺快，就是晚上才来")
    assert resp.status_code == 201, resp.json
    assert resp.json["rating"]["label"] == "基本满意" and resp.json["can_rate"] is False
    again = web.post(f"/api/v1/reports/{tracking}/rating", json={"rating": "不满意"},
                     headers={"Authorization": f"Bearer {report['resident_token']}"})
    assert again.status_code == 409 and "已评价" in again.json["message"]
    assert system.drain()

    rated = of_type(published, "report.rated")
    assert len(rated) == 1
    p = rated[0]["payload"]
    assert p["case_id"] == case_id and p["report_id"] == report["id"] and p["rating"] == "basically_satisfied"
    assert p["satisfied"] is True and p["resolution"] == 1 and p["comment"] == "修得挺快，就是晚上才来"
    assert p["resolved_by"]["level"] == "neighbourhood" and p["resolved_by"]["lead_name"] == "周桂香"
    requested = of_type(published, "report.rating_requested")
    assert len(requested) == 1 and requested[0]["payload"]["tracking_no"] == tracking
    stored = case(system, case_id)
    assert stored["status"] == "resolved"                              # a good rating reopens nothing
    assert stored["timeline"][-1]["type"] == "rated" and stored["timeline"][-1]["rating"] == "基本满意"


def test_unsatisfied_reopens_once_then_the_township_rules(system, web, demo, clock, published):
    report = submit(system, web)
    case_id = case_id_for(report["id"])
    p = posts(system)
    lead = holder(system, p["neighbourhood"])
    resolve(system, web, case_id, lead)
    first_resolved = case(system, case_id)

    clock.advance(hours=3)
    assert rate(web, system, report["id"], "不满意", comment="灯还是一闪一闪的").status_code == 201
    assert system.drain()
    reopened = case(system, case_id)
    assert reopened["status"] == "assigned" and reopened["level"] == "neighbourhood"
    assert reopened["unit_id"] == p["neighbourhood"]["_id"] and reopened["reopens"] == 1
    assert reopened["assigned_at"] > first_resolved["assigned_at"]              # fresh clocks from now
    assert reopened["accept_due"] > first_resolved["accept_due"] and reopened["timer_due"]
    entry = reopened["timeline"][-1]
    assert entry["type"] == "reopened" and entry["note"] == "灯还是一闪一闪的" and "重新办理" in entry["reason"]
    [event] = of_type(published, "case.reopened")
    assert event["payload"]["rating"] == "unsatisfied" and event["payload"]["assignee"]["lead_name"] == "周桂香"
    resident = view(web, system, report["id"])
    assert resident["status"] == "assigned" and resident["can_rate"] is False
    assert "重新办理" in resident["timeline"][-1]["text"]
    assert rate(web, system, report["id"], "满意").status_code == 409          # nothing to rate while reopened

    # Resolved again, and again not satisfied: the township rules.
    resolve(system, web, case_id, lead, note="更换了整套灯具")
    assert view(web, system, report["id"])["resolution"]["no"] == 2
    assert rate(web, system, report["id"], "不满意", comment="还是不亮").status_code == 201
    assert system.drain()
    ruling = case(system, case_id)
    assert ruling["status"] == "assigned" and ruling["level"] == "township" and ruling["reopens"] == 2
    assert ruling["ruling"]["reason"] == "群众再次不满意，请镇(街道)裁定"
    assert ruling["timeline"][-1]["reason"] == "群众再次不满意，请镇(街道)裁定"
    assert len(ruling["past_resolutions"]) == 2

    # The township's ruling stands: a third 不满意 is recorded, nothing reopens.
    resolve(system, web, case_id, holder(system, p["township"]), note="经现场核查，灯具正常，已向群众说明")
    assert rate(web, system, report["id"], "不满意", comment="不认可").status_code == 201
    assert system.drain()
    final = case(system, case_id)
    assert final["status"] == "resolved" and final["reopens"] == 2
    assert final["timeline"][-1]["type"] == "rated" and "裁定" in final["timeline"][-1]["remark"]
    assert len(of_type(published, "case.reopened")) == 2


def test_a_department_resolution_that_leaves_the_resident_unsatisfied_returns_to_the_township(system, web, demo):
    report = submit(system, web)
    case_id = case_id_for(report["id"])
    staff = holder(system, posts(system)["township"])
    cases = system.service("dispatch").api["cases"]
    escalator = system.service("dispatch").api["escalator"]
    from services.dispatch.transitions import Actor

    cases.mutate(case_id, lambda c: escalator.escalate(c, system.clock.now(), reason="需要部门协调解决",
                                                       actor=Actor("镇综治中心", "staff")))
    for _ in range(6):   # up to the township, then to the departments
        if case(system, case_id)["status"] == "referred":
            break
        cases.mutate(case_id, lambda c: escalator.escalate(c, system.clock.now(), reason="需要部门协调解决",
                                                           actor=Actor("镇综治中心", "staff")))
    assert case(system, case_id)["status"] == "referred"
    signed = make_event("case.signed_off", TOWNSHIP, {
        "case_id": case_id, "report_id": report["id"], "tracking_no": report["tracking_no"],
        "department_id": "430382-zjj", "department_name": "韶山市住房和城乡建设局", "note": "已更换线路"},
        at=system.clock.now(), correlation_id=report["id"])
    department_events.on_case_signed_off(cases, system.clock, signed)
    assert system.drain()
    assert view(web, system, report["id"])["status"] == "resolved"
    assert rate(web, system, report["id"], "不满意", comment="部门来了没修好").status_code == 201
    assert system.drain()
    back = case(system, case_id)
    assert back["status"] == "assigned" and back["level"] == "township" and back["reopens"] == 1
    assert "市直部门" in back["timeline"][-1]["reason"]
    assert staff  # the township's staff hold it now


def test_the_rating_page_from_the_notification(system, web, demo):
    report = submit(system, web)
    resolve(system, web, case_id_for(report["id"]), holder(system, posts(system)["neighbourhood"]))
    page = web.get(f"/r/{report['tracking_no']}")
    assert page.status_code == 200 and "text/html" in page.content_type
    assert report["tracking_no"] in page.get_data(as_text=True) and "phone_last4" in page.get_data(as_text=True)
    assert "13973200001" not in page.get_data(as_text=True)
    wrong = web.post(f"/r/{report['tracking_no']}", data={"phone_last4": "1234", "rating": "满意"})
    assert wrong.status_code == 404
    unknown = web.post("/r/ZZZZ9999", data={"phone_last4": "0001", "rating": "满意"})
    assert unknown.status_code == 404
    same = "未找到该诉求，或查询码与手机号后四位不符"     # an unknown number and a wrong proof read alike
    assert same in wrong.get_data(as_text=True) and same in unknown.get_data(as_text=True)
    assert web.post(f"/r/{report['tracking_no']}", data={"phone_last4": "0001", "rating": "好"}).status_code == 422
    ok = web.post(f"/r/{report['tracking_no'].lower()}", data={"phone_last4": "0001", "rating": "满意",
                                                               "comment": "<script>x</script>"})
    assert ok.status_code == 200 and "感谢您的评价" in ok.get_data(as_text=True)
    assert "<script>" not in ok.get_data(as_text=True)
    assert view(web, system, report["id"])["rating"]["comment"] == "<script>x</script>"
    assert web.post(f"/r/{report['tracking_no']}", data={"phone_last4": "0001", "rating": "满意"}).status_code == 409


def test_the_rating_link_uses_the_townships_site(system, web, demo, published):
    staff = token(system, "staff")
    resp = web.put(f"/api/v1/townships/{TOWNSHIP}/resident-settings",
                   json={"rating_link_base": "https://qingxi.example.cn/"}, headers=staff)
    assert resp.status_code == 200 and resp.json["rating_link_base"] == "https://qingxi.example.cn"
    assert web.put(f"/api/v1/townships/{TOWNSHIP}/resident-settings", json={"rating_link_base": "http://x.cn"},
                   headers=staff).status_code == 422
    report = submit(system, web)
    resolve(system, web, case_id_for(report["id"]), holder(system, posts(system)["neighbourhood"]))
    [asked] = of_type(published, "report.rating_requested")
    assert asked["payload"]["rate_url"] == f"https://qingxi.example.cn/r/{report['tracking_no']}"


# -- follow-up calls (回访) --------------------------------------------------------------------------------
def test_no_rating_in_three_days_becomes_a_follow_up_call(system, web, demo, clock, published):
    report = submit(system, web)
    case_id = case_id_for(report["id"])
    resolve(system, web, case_id, holder(system, posts(system)["neighbourhood"]))
    sweeper = system.service("intake").api["followup_sweeper"]
    staff = token(system, "staff")
    url = f"/api/v1/townships/{TOWNSHIP}/followups"

    clock.advance(days=2, hours=23)
    assert sweeper.run_once() == 0 and web.get(url, headers=staff).json == []
    clock.advance(hours=1, minutes=1)
    assert sweeper.run_once() == 1
    assert sweeper.run_once() == 0                                     # one task per resolution
    [task] = web.get(url, headers=staff).json
    assert task["tracking_no"] == report["tracking_no"] and task["status"] == "open"
    assert task["reporter_phone"] == "13973200001"                    # staff call the resident back
    assert task["resolved_by"]["lead_name"] == "周桂香" and task["resolution"] == 1
    assert web.get(url, headers=token(system, "staff", townships=(OTHER,))).status_code == 404
    assert web.get(url, headers=client(system)).status_code == 403

    done = f"/api/v1/followups/{task['id']}/complete"
    assert web.post(done, json={"outcome": "maybe"}, headers=staff).status_code == 422
    assert web.post(done, json={"outcome": "reached"}, headers=token(system, "staff", townships=(OTHER,))).status_code == 404
    resp = web.post(done, json={"outcome": "unsatisfied", "note": "群众说灯还是不亮"}, headers=staff)
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "done" and resp.json["outcome"] == "unsatisfied" and resp.json["rated"] == "不满意"
    assert web.post(done, json={"outcome": "reached"}, headers=staff).status_code == 409
    assert system.drain()
    [completed] = of_type(published, "followup.completed")
    assert completed["payload"]["outcome"] == "unsatisfied" and "satisfied" not in completed["payload"]
    [rated] = of_type(published, "report.rated")
    assert rated["payload"]["source"] == "followup" and rated["payload"]["rating"] == "unsatisfied"
    assert case(system, case_id)["status"] == "assigned"             # the call's 不满意 reopened it
    assert web.get(url, headers=staff).json == []
    assert len(web.get(f"{url}?status=done", headers=staff).json) == 1


def test_a_rating_cancels_the_follow_up_and_the_delay_is_configurable(system, web, demo, clock):
    staff = token(system, "staff")
    web.put(f"/api/v1/townships/{TOWNSHIP}/resident-settings", json={"followup_after_days": 1}, headers=staff)
    sweeper = system.service("intake").api["followup_sweeper"]
    rated = submit(system, web)
    silent = submit(system, web, phone="13973200002", description="垃圾桶满了好几天没人清运")
    lead = holder(system, posts(system)["neighbourhood"])
    for r in (rated, silent):
        resolve(system, web, case_id_for(r["id"]), lead)
    assert rate(web, system, rated["id"], "满意").status_code == 201
    clock.advance(days=1, minutes=1)
    assert sweeper.run_once() == 1
    [task] = web.get(f"/api/v1/townships/{TOWNSHIP}/followups", headers=staff).json
    assert task["tracking_no"] == silent["tracking_no"]
    resp = web.post(f"/api/v1/followups/{task['id']}/complete", json={"outcome": "unreachable", "note": "两次未接"},
                    headers=ADMIN_HEADERS)
    assert resp.status_code == 200 and resp.json["rated"] is None
    assert view(web, system, silent["id"])["can_rate"] is True        # the resident may still rate
