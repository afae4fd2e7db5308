"""The whole path, embedded: a resident's report climbs to the township, is referred to the city's
departments, the lead and co-handling departments do their parts and the lead signs off; dispatch
resolves the case (department_events.py) and the resident's view says so. Also: a return and a
re-route, a return ruled back, extensions approved and refused, missed deadlines, an unmatched case."""
from __future__ import annotations


import pytest

from services.dispatch import department_events, transitions
from shared.domain.ids import case_id_for
from shared.domain.workdays import Duration, add
from shared.cli import _load_demo
from shared.clock import iso, parse_iso
from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.escalation import (CITY, TOWNSHIP, dept_id, record_published, referred_event, report_event,
                                     setup_city)


@pytest.fixture
def demo(system):
    return _load_demo(system)


@pytest.fixture
def bus(system):
    """Every event the relay publishes, in order."""
    return record_published(system)


@pytest.fixture
def wired(system):
    """dispatch's composition root wires department_events' handlers for the two events."""
    worker = next(w for w in system.workers if w.service == "dispatch")
    assert {"case.signed_off", "case.returned"} <= set(worker.dispatcher.handlers)
    return system.service("dispatch").api["cases"]


@pytest.fixture
def timers(system):
    """The department SLA sweeper, stopped in the background so a test fires it by hand."""
    sweeper = next(t for t in system.service("escalation").tasks if t.name == "department-sla")
    sweeper.stop()
    return sweeper


def service(system):
    return system.service("escalation").api["service"]


def staff(system, township=TOWNSHIP):
    return token(system, "staff", townships=(township,), name="清溪镇李干事")


def refer_a_report(system, web, demo, *, category="housing", phone="13812345678") -> tuple[str, str, str]:
    """A resident reports; the township refers the case up (dispatch's own transition)."""
    body = {"township": TOWNSHIP, "category": category, "description": "3栋屋顶漏水，雨天家里到处是水",
            "reporter_phone": phone, "channel": "mini_program", "address": demo["address"]}
    resp = web.post("/api/v1/reports", json=body, headers=token(system, "client"))
    assert resp.status_code == 201, resp.json
    assert system.drain()
    report_id = resp.json["id"]
    case_id = case_id_for(report_id)
    system.service("dispatch").api["cases"].mutate(
        case_id, lambda c: transitions.refer(c, system.clock.now(), reason="需要部门协调解决",
                                             actor=transitions.Actor("清溪镇李干事", "staff")))
    assert system.drain()
    return case_id, report_id, resp.json["tracking_no"]


def act(web, headers, case_id, action, body=None, **kw):
    return web.post(f"/api/v1/department/cases/{case_id}/{action}", json=body or {}, headers=headers, **kw)


def of_type(bus, kind, **match):
    return [e for e in bus if e["type"] == kind and all(e["payload"].get(k) == v for k, v in match.items())]


# ================================================================================ the whole path

def test_from_the_township_to_sign_off_and_back_to_the_resident(system, web, demo, bus, wired):
    depts = setup_city(web)
    case_id, report_id, tracking = refer_a_report(system, web, demo)

    # The matrix put 住建局 in the lead with 电信 and 民政局 co-handling, each told through notify.
    assigned = of_type(bus, "department.assigned", case_id=case_id)
    assert {(e["payload"]["department_id"], e["payload"]["role"]) for e in assigned} == {
        (dept_id("zjj"), "lead"), (dept_id("dx"), "co"), (dept_id("mzj"), "co")}
    lead_event = next(e for e in assigned if e["payload"]["role"] == "lead")
    assert lead_event["payload"]["department_name"] == "韶山市住房和城乡建设局"
    assert lead_event["payload"]["tracking_no"] == tracking and lead_event["payload"]["report_id"] == report_id
    # Monday 09:00 + 1 working day to accept, + 10 working days to finish.
    assert lead_event["payload"]["accept_due"] == "2026-11-03T01:00:00.000000Z"
    assert lead_event["payload"]["due_at"] == "2026-11-16T01:00:00.000000Z"

    listed = web.get("/api/v1/department/cases", headers=depts["zjj"]).json["items"]
    assert [(r["case_id"], r["role"], r["status"]) for r in listed] == [(case_id, "lead", "assigned")]

    # The lead sees the resident's full phone (sees_phone), a co-handling department a masked one.
    lead_view = web.get(f"/api/v1/department/cases/{case_id}", headers=depts["zjj"]).json
    assert lead_view["report"]["reporter_phone"] == "13812345678"
    assert lead_view["report"]["description"].startswith("3栋屋顶漏水")
    assert lead_view["referral"]["reason"] == "需要部门协调解决"
    assert lead_view["referral"]["from_level"] in ("neighbourhood", "group", "area", "village", "township")
    assert web.get(f"/api/v1/department/cases/{case_id}", headers=depts["dx"]).json["report"]["reporter_phone"] \
        == "138****5678"

    # Out of order: sign-off before accepting, before the co parts; a co department cannot sign off.
    resp = act(web, depts["zjj"], case_id, "sign-off", {"resolution": "已修好"})
    assert resp.status_code == 409 and resp.json["error_code"] == "not_accepted" and "签收" in resp.json["message"]
    assert act(web, depts["zjj"], case_id, "accept", {"note": "已签收，安排鉴定"}).status_code == 200
    assert act(web, depts["zjj"], case_id, "accept").json["error_code"] == "already_accepted"
    assert act(web, depts["zjj"], case_id, "progress", {"note": "鉴定机构已进场"}).status_code == 200
    resp = act(web, depts["zjj"], case_id, "sign-off", {"resolution": "已修好"})
    assert resp.status_code == 409 and resp.json["error_code"] == "co_parts_pending"
    assert "中国电信韶山分公司" in resp.json["message"] and "韶山市民政局" in resp.json["message"]
    assert act(web, depts["dx"], case_id, "part", {"note": "线路已迁改"}).json["error_code"] == "not_accepted"
    for short, note in (("dx", "已迁改楼顶通信线路"), ("mzj", "已为困难户申请临时救助")):
        assert act(web, depts[short], case_id, "accept").status_code == 200
        resp = act(web, depts[short], case_id, "part", {"note": note})
        assert resp.status_code == 200 and resp.json["my_part"]["status"] == "submitted"
    assert act(web, depts["dx"], case_id, "part", {"note": "again"}).json["error_code"] == "part_submitted"
    assert act(web, depts["mzj"], case_id, "sign-off", {"resolution": "x"}).json["error_code"] == "not_lead"
    assert act(web, depts["dx"], case_id, "return", {"reason": "不归我们", "evidence": ["https://x.cn/a"]}) \
        .json["error_code"] == "co_cannot_return"
    assert system.drain()  # the relay publishes on a thread of its own: wait for it before reading the bus
    submitted = of_type(bus, "department.part_submitted", case_id=case_id)
    assert {e["payload"]["lead_department_id"] for e in submitted} == {dept_id("zjj")}

    resp = act(web, depts["zjj"], case_id, "sign-off",
               {"resolution": "已完成屋面防水维修，住户确认不再漏水", "attachments": ["https://zjj.example.cn/after.jpg"]})
    assert resp.status_code == 200, resp.json
    assert resp.json["case_status"] == "signed_off"
    assert [p["note"] for p in resp.json["resolution"]["co_parts"]] == ["已迁改楼顶通信线路", "已为困难户申请临时救助"]
    assert act(web, depts["zjj"], case_id, "progress", {"note": "x"}).json["error_code"] == "case_closed"
    assert system.drain()

    (signed,) = of_type(bus, "case.signed_off", case_id=case_id)
    assert signed["payload"]["department_name"] == "韶山市住房和城乡建设局"
    # dispatch resolved its case, which told intake (the resident's view) and notify.
    case = wired.get(case_id)
    assert case["status"] == "resolved" and case["resolution"].startswith("已完成屋面防水维修")
    assert case["assignee"]["unit_name"] == "韶山市住房和城乡建设局"
    assert case["timeline"][-1]["type"] == "signed_off"
    (resolved,) = of_type(bus, "case.resolved", case_id=case_id)
    assert resolved["payload"]["status"] == "resolved"
    view = web.get(f"/api/v1/reports/{report_id}", headers=token(system, "client")).json
    assert view["status"] == "resolved" and view["handler"]["unit_name"] == "韶山市住房和城乡建设局"
    deliveries = system.service("notify").api["service"].deliveries.find({"case_id": case_id})
    to_resident = [d for d in system.service("notify").api["service"].deliveries.find({"township": TOWNSHIP})
                   if d["recipient_role"] == "resident" and d["event_type"] in
                   ("case.resolved", "case.signed_off", "report.rating_requested")]
    # Told once, with how to rate — not once per event of the sign-off.
    assert [d["event_type"] for d in to_resident] == ["report.rating_requested"]
    assert tracking in to_resident[0]["text"] and "评价" in to_resident[0]["text"]
    # The department's timeline tells the whole story in order.
    kinds = [t["type"] for t in web.get(f"/api/v1/department/cases/{case_id}", headers=depts["zjj"]).json["timeline"]]
    assert kinds[0] == "referred" and kinds[-1] == "signed_off"
    assert kinds.count("assigned") == 3 and kinds.count("part_submitted") == 2 and "progress" in kinds


def test_redelivered_referral_assigns_once(system, web, bus):
    setup_city(web)
    svc = service(system)
    event = referred_event("c" * 32)
    for _ in range(3):
        svc.on_case_referred(event)
    assert system.drain()
    assert len(of_type(bus, "department.assigned", case_id="c" * 32)) == 3  # lead + 2 co, once each
    assert svc.desk.count({"case_id": "c" * 32}) == 3


def test_the_report_arriving_after_the_referral_is_attached(system, web):
    setup_city(web)
    svc = service(system)
    svc.on_case_referred(referred_event("c" * 32, report_id="r" * 32))
    assert svc.referrals.get("c" * 32)["report"] is None
    svc.on_report_submitted(report_event("r" * 32))
    assert svc.referrals.get("c" * 32)["report"]["reporter_name"] == "张大爷"
    assert svc.copies.get("r" * 32) is None
    # And the usual order: the copy waits for the referral, then moves into it.
    svc.on_report_submitted(report_event("s" * 32))
    assert svc.copies.get("s" * 32)["reporter_phone"] == "13812345678"
    svc.on_case_referred(referred_event("d" * 32, report_id="s" * 32))
    assert svc.referrals.get("d" * 32)["report"]["address"] == "韶山村一组3栋"
    assert svc.copies.get("s" * 32) is None


# ================================================================================ returns

def test_a_return_and_a_re_route(system, web, demo, bus, wired):
    depts = setup_city(web)
    case_id, _, _ = refer_a_report(system, web, demo, category="road")
    assert web.get(f"/api/v1/department/cases/{case_id}", headers=depts["jtj"]).status_code == 200
    assert act(web, depts["jtj"], case_id, "extension", {"working_days": 3, "reason": "需要勘查"}).status_code == 200
    bad = act(web, depts["jtj"], case_id, "return", {"reason": "不归我们", "evidence": ["not a url"]})
    assert bad.status_code == 422 and "evidence" in bad.json["errors"]["json"]
    resp = act(web, depts["jtj"], case_id, "return",
               {"reason": "该路段属省道，养护责任在省公路事务中心", "evidence": ["https://jtj.example.cn/duty.pdf"]})
    assert resp.status_code == 200, resp.json
    assert resp.json["case_status"] == "returned" and resp.json["my_part"]["status"] == "returned"
    assert resp.json["my_part"]["extensions"][0]["status"] == "closed"   # a return ends a pending request
    assert act(web, depts["jtj"], case_id, "accept").json["error_code"] == "return_pending"
    assert system.drain()
    (returned,) = of_type(bus, "case.returned", case_id=case_id)
    assert returned["payload"]["evidence"] == ["https://jtj.example.cn/duty.pdf"]
    # dispatch has it on the case's timeline, the case still with the departments.
    case = wired.get(case_id)
    assert case["status"] == "referred" and case["timeline"][-1]["type"] == "department_returned"
    assert case["department_returns"][0]["reason"].startswith("该路段属省道")

    staff_h = staff(system)
    waiting = web.get(f"/api/v1/townships/{TOWNSHIP}/referrals?status=returned", headers=staff_h).json
    assert [r["case_id"] for r in waiting] == [case_id]
    assert web.post(f"/api/v1/referrals/{case_id}/lead", json={"department_id": dept_id("jtj")},
                    headers=staff_h).json["error_code"] == "same_department"
    unknown = web.post(f"/api/v1/referrals/{case_id}/lead", json={"department_id": "430521-x"}, headers=staff_h)
    assert unknown.status_code == 422 and "department_id" in unknown.json["errors"]["json"]
    resp = web.post(f"/api/v1/referrals/{case_id}/lead",
                    json={"department_id": dept_id("cg"), "note": "经核实属城管职责"}, headers=staff_h)
    assert resp.status_code == 200, resp.json
    parts = {p["department_id"]: p["status"] for p in resp.json["parts"]}
    assert parts == {dept_id("jtj"): "transferred", dept_id("cg"): "assigned"}
    assert resp.json["parts"][0]["returned"]["outcome"] == "rerouted"
    assert system.drain()

    # The old lead no longer sees the case; the new one does, on fresh clocks.
    assert web.get(f"/api/v1/department/cases/{case_id}", headers=depts["jtj"]).status_code == 404
    assert web.get("/api/v1/department/cases", headers=depts["jtj"]).json["items"] == []
    assert act(web, depts["jtj"], case_id, "accept").status_code == 404
    (row,) = web.get("/api/v1/department/cases", headers=depts["cg"]).json["items"]
    assert row["case_id"] == case_id and row["role"] == "lead" and row["status"] == "assigned"
    assert of_type(bus, "department.released", case_id=case_id, department_id=dept_id("jtj"))
    assert of_type(bus, "department.assigned", case_id=case_id, department_id=dept_id("cg"))
    assert web.post(f"/api/v1/referrals/{case_id}/lead", json={"department_id": dept_id("zjj")},
                    headers=staff_h).json["error_code"] == "not_returned"
    assert act(web, depts["cg"], case_id, "accept").status_code == 200
    assert act(web, depts["cg"], case_id, "sign-off", {"resolution": "已修补路面"}).status_code == 200


def test_a_return_ruled_unfounded_must_be_handled(system, web, demo, bus):
    depts = setup_city(web)
    case_id, _, _ = refer_a_report(system, web, demo, category="road")
    system.clock.advance(hours=3)
    act(web, depts["jtj"], case_id, "return", {"reason": "不归我们", "evidence": ["https://jtj.example.cn/a"]})
    staff_h = staff(system)
    resp = web.post(f"/api/v1/referrals/{case_id}/ruling", json={"ruling": "该路段已移交市交通运输局养护，请依责办理"},
                    headers=staff_h)
    assert resp.status_code == 200, resp.json
    part = resp.json["parts"][0]
    assert part["status"] == "assigned" and part["round"] == 2 and part["return_used"]
    assert part["returned"]["outcome"] == "overruled"
    # Fresh clocks from the ruling (Monday 12:00 → Tuesday 12:00 to accept).
    assert part["accept_due"] == "2026-11-03T04:00:00.000000Z"
    assert web.post(f"/api/v1/referrals/{case_id}/ruling", json={"ruling": "again"},
                    headers=staff_h).json["error_code"] == "not_returned"
    again = act(web, depts["jtj"], case_id, "return", {"reason": "还是不归我们", "evidence": ["https://x.cn/b"]})
    assert again.status_code == 409 and again.json["error_code"] == "return_used"
    assert system.drain()
    (ruled,) = of_type(bus, "department.return_ruled", case_id=case_id)
    assert ruled["payload"]["note"].startswith("该路段已移交")
    assert act(web, depts["jtj"], case_id, "accept").status_code == 200
    assert act(web, depts["jtj"], case_id, "sign-off", {"resolution": "已修补"}).status_code == 200


def test_a_return_after_its_window_is_refused(system, web, demo):
    depts = setup_city(web)
    case_id, _, _ = refer_a_report(system, web, demo, category="road")
    system.clock.advance(days=1, minutes=1)   # Tuesday 09:01: one working day is over
    resp = act(web, depts["jtj"], case_id, "return", {"reason": "不归我们", "evidence": ["https://x.cn/a"]})
    assert resp.status_code == 409 and resp.json["error_code"] == "return_window_closed"


def test_an_unmatched_category_waits_for_the_township(system, web, bus):
    setup_city(web)
    web.delete(f"/api/v1/cities/{CITY}/matrix/rows?category=social", headers=ADMIN_HEADERS)
    svc = service(system)
    svc.on_case_referred(referred_event("e" * 32, category="social"))
    assert system.drain()
    assert of_type(bus, "department.unmatched", case_id="e" * 32)
    staff_h = staff(system)
    (row,) = web.get(f"/api/v1/townships/{TOWNSHIP}/referrals?status=unmatched", headers=staff_h).json
    assert row["case_id"] == "e" * 32
    resp = web.post(f"/api/v1/referrals/{'e' * 32}/lead", json={"department_id": dept_id("mzj")}, headers=staff_h)
    assert resp.status_code == 200 and resp.json["case_status"] == "assigned"
    assert resp.json["lead_department_id"] == dept_id("mzj")


# ================================================================================ extensions

def test_extensions_one_refused_one_approved(system, web, demo, bus):
    depts = setup_city(web)
    case_id, _, _ = refer_a_report(system, web, demo, category="road")
    assert act(web, depts["jtj"], case_id, "accept").status_code == 200
    before = web.get(f"/api/v1/department/cases/{case_id}", headers=depts["jtj"]).json["my_part"]["finish_due"]

    resp = act(web, depts["jtj"], case_id, "extension", {"working_days": 5, "reason": "需等待第三方检测报告"})
    assert resp.status_code == 200
    (first,) = resp.json["my_part"]["extensions"]
    assert first["status"] == "pending" and resp.json["my_part"]["finish_due"] == before  # not before approval
    assert act(web, depts["jtj"], case_id, "extension", {"working_days": 2, "reason": "again"}) \
        .json["error_code"] == "extension_pending"

    staff_h = staff(system)
    pending = web.get(f"/api/v1/townships/{TOWNSHIP}/referrals", headers=staff_h).json[0]["pending_extensions"]
    assert [p["extension_id"] for p in pending] == [first["id"]]
    missing_note = web.post(f"/api/v1/referrals/{case_id}/extensions/{first['id']}/refuse", json={}, headers=staff_h)
    assert missing_note.status_code == 422 and "note" in missing_note.json["errors"]["json"]
    resp = web.post(f"/api/v1/referrals/{case_id}/extensions/{first['id']}/refuse",
                    json={"note": "时限足够，请按期办结"}, headers=staff_h)
    assert resp.status_code == 200
    assert resp.json["parts"][0]["finish_due"] == before
    assert resp.json["parts"][0]["extensions"][0]["status"] == "refused"
    assert web.post(f"/api/v1/referrals/{case_id}/extensions/{first['id']}/approve", json={},
                    headers=staff_h).json["error_code"] == "extension_decided"

    resp = act(web, depts["jtj"], case_id, "extension", {"working_days": 5, "reason": "材料到货延迟"})
    second = resp.json["my_part"]["extensions"][-1]
    resp = web.post(f"/api/v1/referrals/{case_id}/extensions/{second['id']}/approve",
                    json={"working_days": 3, "note": "同意延期3个工作日"}, headers=staff_h)
    assert resp.status_code == 200, resp.json
    after = resp.json["parts"][0]["finish_due"]
    assert after == iso(add(parse_iso(before), Duration(3, "working_days")))
    assert resp.json["parts"][0]["extensions"][-1]["status"] == "approved"
    assert web.post(f"/api/v1/referrals/{case_id}/extensions/nope/approve", json={},
                    headers=staff_h).status_code == 404
    assert system.drain()
    decisions = [e["payload"]["decision"] for e in of_type(bus, "department.extension_decided", case_id=case_id)]
    assert decisions == ["refused", "approved"]
    # The department's own view and list follow the moved clock.
    (row,) = web.get("/api/v1/department/cases", headers=depts["jtj"]).json["items"]
    assert row["due_at"] == after


# ================================================================================ deadlines

def test_missed_deadlines_reach_the_township_and_the_supervisor(system, web, demo, bus, timers):
    depts = setup_city(web)
    case_id, _, _ = refer_a_report(system, web, demo, category="road")
    svc = service(system)
    assert timers.run_once() == 0                  # nothing due yet
    system.clock.advance(hours=18, minutes=1)      # 0.75 of the working day to accept
    assert timers.run_once() == 1
    assert system.drain()
    (warning,) = of_type(bus, "sla.warning", case_id=case_id)
    assert warning["payload"]["assignee"]["level"] == "department"
    assert warning["payload"]["assignee"]["unit_id"] == dept_id("jtj")
    (dept_warning,) = of_type(bus, "department.sla_warning", case_id=case_id)
    assert dept_warning["payload"]["supervisor_name"] == "王督办" and dept_warning["payload"]["kind"] == "accept"

    system.clock.advance(hours=6)                  # past the accept deadline
    snapshot = svc.referrals.get(case_id)
    assert timers.run_once() == 1
    assert system.drain()
    (breach,) = of_type(bus, "sla.breached", case_id=case_id)
    assert breach["payload"]["reason"] == "市直部门超时未签收" and breach["township"] == TOWNSHIP
    (dept_breach,) = of_type(bus, "department.sla_breached", case_id=case_id)
    assert dept_breach["payload"]["supervisor_phone"] == "13900000009"
    part = web.get(f"/api/v1/department/cases/{case_id}", headers=depts["jtj"]).json["my_part"]
    assert [b["kind"] for b in part["breaches"]] == ["accept"]
    # The department is late but still holds the case: there is no level above it.
    assert act(web, depts["jtj"], case_id, "accept").status_code == 200
    # A claim made before the acceptance is stale: it fires nothing.
    assert svc.fire_timers(snapshot) == []
    assert timers.run_once() == 0
    # The finish clock goes on: warning at 7.5 working days, breach at 10.
    system.clock.set(parse_iso(part["finish_due"]))
    assert timers.run_once() == 1
    assert system.drain()
    kinds = [e["payload"]["kind"] for e in bus if e["type"].startswith("department.sla_")]
    assert kinds == ["accept", "accept", "finish"]      # the finish warning folded into its breach
    assert len(of_type(bus, "sla.breached", case_id=case_id)) == 2
    assert timers.run_once() == 0                        # each deadline fires once


def test_clocks_follow_the_department_then_the_city_settings(system, web):
    depts = setup_city(web, sla={"accept": "4h", "finish": "5wd"})
    resp = web.patch(f"/api/v1/departments/{dept_id('zjj')}", json={"sla": {"finish": "3wd", "return_window": "2h"}},
                     headers=ADMIN_HEADERS)
    assert resp.json["effective_sla"] == {"accept": "4h", "finish": "3wd", "warn_at": 0.75, "return_window": "2h"}
    service(system).on_case_referred(referred_event("c" * 32))     # Monday 09:00 local
    lead = web.get(f"/api/v1/department/cases/{'c' * 32}", headers=depts["zjj"]).json["my_part"]
    assert lead["accept_due"] == "2026-11-02T05:00:00.000000Z"      # the city's 4 hours
    assert lead["finish_due"] == "2026-11-05T01:00:00.000000Z"      # its own 3 working days: Thursday 09:00
    assert lead["return_until"] == "2026-11-02T03:00:00.000000Z"
    co = web.get(f"/api/v1/department/cases/{'c' * 32}", headers=depts["dx"]).json["my_part"]
    assert co["finish_due"] == "2026-11-09T01:00:00.000000Z"        # the city's 5 working days
    assert co["return_until"] is None                               # co-handling departments do not return
