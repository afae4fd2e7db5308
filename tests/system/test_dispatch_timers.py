"""SLA timers on an injected clock: escalation by breaches, by leads and by both; working days
across National Day; stale timers; two replicas over one SQLite file; timers across a restart."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from shared.domain.ids import case_id_for
from services.dispatch.figures import figures
from shared.clock import FakeClock, iso
from shared.events import load_event, make_event
from shared.runtime import Runtime
from tests.support.escalation import record_published
from tests.support.runtime import make_settings, token
from tests.support.dispatch import (TOWNSHIP, api, case, holder, kinds, local, outbox_types, posts,
                                         referral_reason, submit, sweep)


CHAIN = ("neighbourhood", "group", "area", "village", "township")


def escalate(web, system, case_id, unit, reason="beyond_ability", note=None):
    body = {"reason": reason, **({"note": note} if note else {})}
    resp = web.post(f"/api/v1/cases/{case_id}/escalate", json=body, headers=holder(system, unit))
    assert resp.status_code == 200, resp.json
    return resp.json


def test_a_case_climbs_from_neighbourhood_to_department_by_breaches_alone(system, web, demo, clock):
    p = posts(system)
    case_id = submit(system, web)
    doc = case(system, case_id)
    assert (doc["level"], doc["unit_id"], doc["timer"]["kind"]) == ("neighbourhood", p["neighbourhood"]["_id"],
                                                                     "warn_accept")
    # general tier: accept within 2h at 邻 and 组, 4h at 片 and 村, 8h at 镇 (the default 0211 table).
    clock.advance(minutes=90)
    assert sweep(system) == 1
    doc = case(system, case_id)
    assert kinds(doc)[-1] == "warned" and doc["level"] == "neighbourhood"
    assert doc["timer"] == {"kind": "accept", "step": 1, "due": doc["accept_due"]}
    clock.advance(minutes=30)
    sweep(system)
    for level, hours in (("group", 2), ("area", 4), ("village", 4), ("township", 8)):
        doc = case(system, case_id)
        assert doc["level"] == level and doc["unit_id"] == p[level]["_id"] and doc["status"] == "assigned"
        assert doc["accept_due"] == iso(clock.now() + timedelta(hours=hours))
        clock.advance(hours=hours)  # straight past the warning point to the deadline
        assert sweep(system) == 1
    doc = case(system, case_id)
    assert doc["status"] == "referred" and doc["level"] == "department" and doc["timer_due"] is None
    climbs = [e for e in doc["timeline"] if e["type"] in ("escalated", "referred")]
    assert [e["level"] for e in climbs] == ["group", "area", "village", "township", "department"]
    assert {e["reason"] for e in climbs} == {"超时未接单"} and {e["actor"] for e in climbs} == {"system"}
    assert [b["level"] for b in doc["breaches"]] == list(CHAIN)
    f = figures(doc["timeline"])
    assert f["levels_climbed"] == 5 and f["breaches_per_level"] == {level: 1 for level in CHAIN}
    assert f["warnings"] == 1 and f["time_to_accept"] is None

    assert system.drain()
    assert referral_reason(system, case_id) == "超时未接单"
    view = web.get(f"/api/v1/reports/{doc['report_id']}", headers=token(system, "client")).json
    assert view["status"] == "referred" and view["level"] == "department"
    texts = [t["text"] for t in view["timeline"]]
    assert "已上报至一组组长" in texts and "已上报市直部门办理" in texts


def test_a_case_climbs_by_leads_escalations_alone(system, web, demo, clock):
    p = posts(system)
    case_id = submit(system, web)
    start = clock.now()
    reasons = ["not_my_neighbourhood", "beyond_ability", "beyond_ability", "needs_department", "needs_department"]
    for level, reason in zip(CHAIN, reasons):
        doc = escalate(web, system, case_id, p[level], reason, note=f"{level} 无法处理")
    assert doc["status"] == "referred" and doc["timer"] is None
    doc = case(system, case_id)
    climbs = [e for e in doc["timeline"] if e["type"] in ("escalated", "referred")]
    assert [e["from_level"] for e in climbs] == list(CHAIN)
    assert [e["reason"] for e in climbs] == ["不属于本辖区", "超出本级处理能力", "超出本级处理能力",
                                              "需要部门协调解决", "需要部门协调解决"]
    assert climbs[0]["actor"] == p["neighbourhood"]["lead"]["name"] and climbs[-1]["actor_role"] == "staff"
    assert doc["breaches"] == [] and clock.now() == start
    assert sweep(system) == 0  # a referred case has no timer
    assert system.drain()
    assert referral_reason(system, case_id) == "需要部门协调解决"


def test_a_case_climbs_by_a_mix_and_is_resolved_at_the_village(system, web, demo, clock):
    p = posts(system)
    case_id = submit(system, web)
    clock.advance(minutes=30)
    assert web.post(f"/api/v1/cases/{case_id}/accept", json={"note": "马上去看"},
                    headers=holder(system, p["neighbourhood"])).status_code == 200
    # Accepted but not resolved within 0.25wd (6h from assignment): warned at 4.5h, escalated at 6h.
    clock.advance(hours=4)
    assert sweep(system) == 1 and case(system, case_id)["level"] == "neighbourhood"
    clock.advance(hours=1, minutes=30)
    assert sweep(system) == 1
    doc = case(system, case_id)
    assert doc["level"] == "group" and doc["breaches"][-1]["kind"] == "resolve"
    assert [e["type"] for e in doc["timeline"][-3:]] == ["warned", "breached", "escalated"]
    assert doc["timeline"][-1]["reason"] == "超时未办结"
    escalate(web, system, case_id, p["group"], "needs_department")
    clock.advance(hours=4)  # the area lead never accepts
    sweep(system)
    doc = case(system, case_id)
    assert doc["level"] == "village" and doc["timeline"][-1]["reason"] == "超时未接单"
    village = holder(system, p["village"])
    assert web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=village).status_code == 200
    clock.advance(hours=1)
    resp = web.post(f"/api/v1/cases/{case_id}/resolve", json={"note": "村里出资更换了路灯"}, headers=village)
    assert resp.status_code == 200 and resp.json["status"] == "resolved" and resp.json["timer"] is None
    f = resp.json["figures"]
    assert f["levels_climbed"] == 3 and f["escalated_by_breach"] == 2
    assert f["breaches_per_level"] == {"neighbourhood": 1, "area": 1}
    assert f["time_to_accept"] == 30 * 60 and f["time_to_resolve"] == (30 * 60 + 5.5 * 3600 + 4 * 3600 + 3600)
    assert f["resolved_at_level"] == "village"
    clock.advance(days=30)
    assert sweep(system) == 0


def test_warning_is_skipped_when_the_deadline_has_passed_too(system, web, demo, clock):
    case_id = submit(system, web)
    clock.advance(hours=3)  # a sweep that ran late: warning point and deadline both behind us
    assert sweep(system) == 1
    doc = case(system, case_id)
    assert "warned" not in kinds(doc) and kinds(doc)[-2:] == ["breached", "escalated"]


def test_working_days_across_national_day_and_the_make_up_saturday(system, web, demo, clock):
    """2026: 10-01..10-07 are holidays, Sat 10-10 is a make-up working day, Sun 10-11 is off."""
    p = posts(system)
    clock.set(local(2026, 9, 30, 10, 0))  # Wednesday before National Day
    case_id = submit(system, web, category="road")  # road: difficult tier (0.5wd at 邻 … 3wd at 村)
    doc = case(system, case_id)
    assert doc["tier"] == "difficult"
    assert doc["promise_due"] == iso(local(2026, 10, 13, 10, 0))  # 5wd: 8, 9, 10(Sat), 12, 13
    for level in ("neighbourhood", "group", "area"):
        escalate(web, system, case_id, p[level])
    doc = case(system, case_id)
    assert doc["level"] == "village"
    assert doc["accept_due"] == iso(local(2026, 9, 30, 18, 0))  # 8h, calendar time
    assert doc["resolve_due"] == iso(local(2026, 10, 10, 10, 0))  # 3wd lands on the make-up Saturday
    assert web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=holder(system, p["village"])).status_code == 200

    clock.set(local(2026, 10, 10, 9, 59))
    sweep(system)
    doc = case(system, case_id)
    assert doc["level"] == "village" and kinds(doc)[-1] == "warned"
    clock.set(local(2026, 10, 10, 10, 0))
    assert sweep(system) == 1
    doc = case(system, case_id)
    assert doc["level"] == "township" and doc["timeline"][-1]["reason"] == "超时未办结"
    # Township: 1wd to accept from a Saturday that is a working day: Sunday is not, so Monday.
    assert doc["accept_due"] == iso(local(2026, 10, 12, 10, 0))
    assert doc["resolve_due"] == iso(local(2026, 10, 16, 10, 0))  # 5wd: 12, 13, 14, 15, 16


def test_township_clock_across_the_holiday(system, web, demo, clock):
    clock.set(local(2026, 9, 30, 10, 0))
    case_id = submit(system, web, category="road", address="不存在的地址99号", reporter_phone="13999999999")
    doc = case(system, case_id)
    assert doc["level"] == "township"
    assert doc["accept_due"] == iso(local(2026, 10, 8, 10, 0))  # the next working day is after the holiday
    assert doc["resolve_due"] == iso(local(2026, 10, 13, 10, 0))  # 8, 9, 10 (make-up Saturday), 12, 13
    clock.set(local(2026, 10, 7, 23, 59))
    sweep(system)
    assert case(system, case_id)["status"] == "assigned"  # nothing is due during the holiday
    staff = token(system, "staff")
    clock.set(local(2026, 10, 8, 9, 0))
    assert web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=staff).status_code == 200
    clock.set(local(2026, 10, 13, 9, 59))
    sweep(system)
    assert case(system, case_id)["status"] == "accepted"
    clock.set(local(2026, 10, 13, 10, 0))
    sweep(system)
    doc = case(system, case_id)
    assert doc["status"] == "referred" and doc["timeline"][-1]["reason"] == "超时未办结"


def test_a_stale_timer_does_nothing_but_reschedule(system, web, demo, clock):
    p = posts(system)
    case_id = submit(system, web)
    timers, cases = api(system)["timers"], api(system)["cases"]
    clock.advance(hours=2)  # the accept deadline has come …
    now = clock.now()
    claimed = cases.collection.claim_due("timer_due", iso(now), iso(now + timedelta(minutes=1)), 10)
    assert [c["_id"] for c in claimed] == [case_id] and claimed[0]["timer"]["kind"] == "warn_accept"
    # … but the lead accepts between the claim and the firing.
    assert web.post(f"/api/v1/cases/{case_id}/accept", json={},
                    headers=holder(system, p["neighbourhood"])).status_code == 200
    assert system.drain()  # the relay has sent case.accepted: nothing else writes the case now
    before = case(system, case_id)
    assert timers.fire(claimed[0]) == []
    after = case(system, case_id)
    assert after["timeline"] == before["timeline"] and after["version"] == before["version"]
    assert after["timer"]["kind"] == "warn_resolve" and after["timer_due"] == after["warn_resolve_at"]

    # A timer claimed before the case moved up is stale for the next level too.
    clock.advance(hours=3, minutes=15)  # past the warning point for resolving
    now = clock.now()
    claimed = cases.collection.claim_due("timer_due", iso(now), iso(now + timedelta(minutes=1)), 10)
    escalate(web, system, case_id, p["neighbourhood"])
    assert timers.fire(claimed[0]) == []
    doc = case(system, case_id)
    assert doc["level"] == "group" and "warned" not in kinds(doc) and doc["timer"]["kind"] == "warn_accept"


def test_a_claim_whose_worker_died_is_fired_after_the_lease(system, web, demo, clock):
    case_id = submit(system, web)
    clock.advance(hours=2)
    now = clock.now()
    sweeper = api(system)["sweeper"]
    # A replica claims the case and dies before doing the work: the lease holds it back …
    system.service("dispatch").api["cases"].collection.claim_due("timer_due", iso(now), iso(now + sweeper.lease), 10)
    assert sweep(system) == 0
    # … and when it runs out, another sweep fires the timer.
    clock.advance(seconds=sweeper.lease.total_seconds())
    assert sweep(system) == 1
    assert case(system, case_id)["level"] == "group"


def test_a_lead_s_accept_between_the_claim_and_the_batch_write_wins_and_the_rest_of_the_batch_fires(
        system, web, demo, clock):
    p = posts(system)
    raced, other = submit(system, web), submit(system, web)
    clock.advance(hours=2)  # both accept deadlines are past
    now = clock.now()
    cases, timers = api(system)["cases"], api(system)["timers"]
    claimed = cases.collection.claim_due("timer_due", iso(now), iso(now + timedelta(minutes=1)), 10)
    assert {d["_id"] for d in claimed} == {raced, other}
    # What the firing stages is read from what the relay publishes, after a drain: its thread may
    # publish and clear an outbox before the test could read it.
    bus = record_published(system)
    # The lead accepts after the claim, before the sweeper writes its batch: the batch's
    # compare-and-set for that case loses, and the case is done again from what is stored.
    assert web.post(f"/api/v1/cases/{raced}/accept", json={}, headers=holder(system, p["neighbourhood"])).status_code \
        == 200
    # The township's staff supervise the other case meanwhile: its timer still holds, so the
    # breach fires from the stored case, which keeps the supervision.
    staff = token(system, "staff", townships=(TOWNSHIP,), name="镇综治中心")
    assert web.post(f"/api/v1/cases/{other}/supervise", json={"note": "请今天内答复"}, headers=staff).status_code == 200
    assert timers.fire_batch(claimed) == {}
    assert system.drain()
    sent = {case_id: [e["type"] for e in bus if e["payload"].get("case_id") == case_id] for case_id in (raced, other)}
    won = case(system, raced)
    assert won["status"] == "accepted" and won["level"] == "neighbourhood" and "breached" not in kinds(won)
    assert won["timer"]["kind"] == "warn_resolve" and "sla.breached" not in sent[raced]
    fired = case(system, other)
    assert fired["level"] == "group" and kinds(fired).count("breached") == 1 and "supervised" in kinds(fired)
    assert sent[other].count("case.escalated") == 1 and sent[other].count("sla.breached") == 1


def test_a_batch_whose_write_fails_stores_nothing_and_fires_after_the_lease(system, web, demo, clock, monkeypatch):
    case_id = submit(system, web)
    clock.advance(hours=2)
    collection = api(system)["cases"].collection

    def down(items):
        raise OSError("disk gone")

    monkeypatch.setattr(collection, "replace_many", down)
    assert sweep(system) == 0
    doc = case(system, case_id)
    assert doc["level"] == "neighbourhood" and "breached" not in kinds(doc)
    monkeypatch.undo()
    assert sweep(system) == 0  # the claim's lease holds it back …
    clock.advance(seconds=api(system)["sweeper"].lease.total_seconds())
    assert sweep(system) == 1  # … and then it fires, once
    assert kinds(case(system, case_id)).count("breached") == 1


def _report_event(i: int, household_id: str, at: datetime) -> dict:
    report_id = f"bench{i:027d}"
    payload = {"report_id": report_id, "tracking_no": f"T{i:07d}", "category": "environment", "tier": None,
               "description": "楼道灯不亮", "channel": "phone", "household_id": household_id,
               "submitted_at": iso(at)}
    return load_event(make_event("report.submitted", TOWNSHIP, payload, at=at, correlation_id=report_id))


def test_two_replicas_fire_each_due_timer_exactly_once_and_timers_survive_a_restart(tmp_path):
    from shared.cli import _load_demo

    clock = FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc))
    settings = make_settings(tmp_path)
    # Two dispatch processes in all but name: each its own store connection to the same SQLite file.
    a = Runtime(settings, ["dispatch"], clock=clock, consume=False)
    b = Runtime(settings, ["dispatch"], clock=clock, consume=False)
    _load_demo(a)
    org = a.service("dispatch").api["org"]
    staffed = {u["_id"] for u in org.tree(TOWNSHIP) if u["level"] == "neighbourhood" and u.get("lead")}
    households = [h for h in org.households.find({"township": TOWNSHIP}) if h["neighbourhood_id"] in staffed]
    n = 300
    handler = a.service("dispatch").handlers["report.submitted"]
    for i in range(n):
        handler(_report_event(i, households[i % len(households)]["_id"], clock.now()))

    clock.advance(hours=2)  # every case's warning and accept deadline are due at once
    sweepers = [rt.service("dispatch").api["sweeper"] for rt in (a, b)]
    for s in sweepers:
        s.batch = 20  # small claims, so the two replicas interleave
    gate = threading.Barrier(2)
    errors = []

    def run(s):
        try:
            gate.wait()
            s.run_once()
        except Exception as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in sweepers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sweepers[0].fired > 0 and sweepers[1].fired > 0
    assert sweepers[0].fired + sweepers[1].fired == n
    cases = a.service("dispatch").api["cases"].collection
    docs = [cases.get(case_id_for(f"bench{i:027d}")) for i in range(n)]
    assert all(kinds(d).count("breached") == 1 and d["level"] == "group" and d["step"] == 2 for d in docs)
    assert sum(outbox_types(d).count("sla.breached") for d in docs) == n
    assert sum(outbox_types(d).count("case.escalated") for d in docs) == n
    for rt in (a, b):
        rt.stop()

    # A new process over the same file finds the pending timers: they are data, not threads.
    c = Runtime(settings, ["dispatch"], clock=clock, consume=False)
    clock.advance(hours=2)
    assert c.service("dispatch").api["sweeper"].run_once() == n
    cases = c.service("dispatch").api["cases"].collection
    assert cases.group_count("level", {"township": TOWNSHIP}) == {"area": n}
    c.stop()


