"""Who hears what: the recipient rules for every event notify consumes, on the console channel and the
in-memory storage fake (the embedded breach and warning flows are in tests/system/test_notify_embedded.py)."""
from __future__ import annotations

import json

import pytest

from tests.support.fakes.memory_store import MemoryStore
from tests.support.notify import (
    LEADS, RESIDENT_PHONE, TOWNSHIP, Harness, Scripted, assignee, case_payload, event,
)


@pytest.fixture
def h(tmp_path):
    return Harness(tmp_path, store=MemoryStore())


def who(h, event_type: str) -> list[tuple[str, str, str]]:
    return [(d["recipient_role"], d["recipient_id"], d["recipient_kind"])
            for d in h.deliveries(event_type=event_type)]


def test_case_assigned_tells_the_assignee_only(h):
    h.handle(event("case.assigned", case_payload("u-nb1")))
    [d] = h.deliveries()
    assert (d["recipient_role"], d["recipient_id"], d["recipient_name"]) == ("assignee", "u-nb1", "周桂香")
    assert d["status"] == "delivered" and d["channel"] == "console"
    assert "待您接单" in d["text"] and "7KQ4M2XC" in d["text"] and d["text"].startswith("【三长制】周桂香您好")
    assert d["phone_masked"] == "138****0001"
    assert (d["length"], d["segments"]) == (len(d["text"]), 1)


def test_case_escalated_tells_the_new_holder_with_where_it_came_from(h):
    h.handle(event("case.escalated", case_payload("u-grp1", previous=assignee("u-nb1"), reason="超出本级处理能力")))
    [d] = h.deliveries()
    assert (d["recipient_role"], d["recipient_id"]) == ("assignee", "u-grp1")
    assert "第1邻上交" in d["text"] and "超出本级处理能力" in d["text"]


def test_case_reassigned_tells_the_new_holder_and_releases_the_old_one(h):
    h.handle(event("case.reassigned", case_payload("u-nb2", previous=assignee("u-nb1"))))
    assert sorted(who(h, "case.reassigned")) == [("assignee", "u-nb2", "lead"), ("previous", "u-nb1", "lead")]
    old = [d for d in h.deliveries() if d["recipient_id"] == "u-nb1"][0]
    assert "无需再办" in old["text"]


def test_case_supervised_tells_the_holder_the_note(h):
    h.handle(event("case.supervised", case_payload("u-nb1", note="请今天内到现场查看")))
    [d] = h.deliveries()
    assert d["recipient_id"] == "u-nb1" and "请今天内到现场查看" in d["text"]


def test_sla_warning_tells_the_holder_and_the_holder_of_the_post_above(h):
    h.handle(event("sla.warning", case_payload("u-nb1", reason="即将超时未接单", due_at="2026-11-02T03:00:00.000000Z")))
    assert sorted(who(h, "sla.warning")) == [("assignee", "u-nb1", "lead"), ("supervisor", "u-grp1", "lead")]
    sup = [d for d in h.deliveries() if d["recipient_role"] == "supervisor"][0]
    assert sup["recipient_name"] == "彭立新" and "第1邻周桂香" in sup["text"] and "11月02日11:00" in sup["text"]


def test_sla_warning_with_a_vacant_post_above_goes_to_the_township(h):
    # 一片's parent, the village committee, is not in the directory (no contact): the township supervises.
    h.handle(event("sla.warning", case_payload("u-area1", reason="即将超时未办结")))
    assert sorted(who(h, "sla.warning")) == [("assignee", "u-area1", "lead"),
                                             ("supervisor", "t-" + TOWNSHIP, "staff")]


def test_sla_warning_at_the_township_has_no_supervisor_in_the_chain(h):
    t = {"level": "township", "unit_id": "t-" + TOWNSHIP, "unit_name": "清溪镇", "lead_id": None,
         "lead_name": "镇(街道)工作人员", "lead_phone_masked": None}
    h.handle(event("sla.warning", case_payload(assignee=t, reason="即将超时未办结")))
    assert who(h, "sla.warning") == [("assignee", "t-" + TOWNSHIP, "staff")]


def test_sla_breached_tells_the_old_holder_and_the_township_not_the_new_holder(h):
    # As dispatch emits it today: the breach names the holder who let the time run out; the new
    # holder hears it from the case.escalated that follows.
    h.handle(event("sla.breached", case_payload("u-nb1", reason="超时未接单")))
    assert sorted(who(h, "sla.breached")) == [("previous", "u-nb1", "lead"), ("township", "t-" + TOWNSHIP, "staff")]
    staff = [d for d in h.deliveries() if d["recipient_role"] == "township"][0]
    assert "超时未接单" in staff["text"] and "请督办" in staff["text"]


def test_sla_breached_with_previous_tells_previous(h):
    h.handle(event("sla.breached", case_payload("u-grp1", previous=assignee("u-nb1"), reason="超时未办结")))
    assert sorted(who(h, "sla.breached")) == [("previous", "u-nb1", "lead"), ("township", "t-" + TOWNSHIP, "staff")]


def test_township_staff_from_the_environment_all_hear_a_breach(tmp_path):
    staff = {TOWNSHIP: [{"name": "综治办王主任", "phone": "13873100101"}, {"name": "值班室", "wecom_id": "zhiban"}]}
    h = Harness(tmp_path, store=MemoryStore(),
                env={"SANZHANG_NOTIFY_TOWNSHIP_STAFF": json.dumps(staff, ensure_ascii=False)})
    h.handle(event("sla.breached", case_payload("u-nb1", reason="超时未接单")))
    names = sorted(d["recipient_name"] for d in h.deliveries(event_type="sla.breached"))
    assert names == sorted(["周桂香", "值班室", "综治办王主任"])


def test_a_breach_at_the_township_tells_the_township_once(h):
    t = {"level": "township", "unit_id": "t-" + TOWNSHIP, "unit_name": "清溪镇", "lead_id": None,
         "lead_name": None, "lead_phone_masked": None}
    h.handle(event("sla.breached", case_payload(assignee=t, reason="超时未办结")))
    assert who(h, "sla.breached") == [("previous", "t-" + TOWNSHIP, "staff")]


def rating_requested(report_id="r" * 32, case_id="c" * 32, rate_url="https://qx.example.cn/r/7KQ4M2XC"):
    return event("report.rating_requested", {"report_id": report_id, "tracking_no": "7KQ4M2XC", "case_id": case_id,
                                             "category": "road", "resolution": 1, "rate_url": rate_url})


def test_the_resident_hears_acceptance_with_the_tracking_number(h):
    h.report()
    h.handle(event("case.accepted", case_payload("u-nb1")))
    [d] = h.deliveries()
    assert (d["recipient_role"], d["recipient_kind"]) == ("resident", "resident")
    assert d["phone_masked"] == "139****5678" and d["to"]["phone"] == RESIDENT_PHONE
    assert "7KQ4M2XC" in d["text"] and "第1邻邻长接单" in d["text"] and "11月04日17:30" in d["text"]


def test_the_resident_hears_a_resolution_once_with_how_to_rate(h):
    """case.resolved and a department's case.signed_off say nothing to the resident themselves: the
    rating request intake sends for every resolution (with the link) is the one message."""
    h.report()
    h.handle(event("case.resolved", case_payload("u-nb1")))
    h.handle(event("case.signed_off", {"case_id": "c" * 32, "report_id": "r" * 32, "tracking_no": "7KQ4M2XC",
                                       "department_id": "d-zjj", "department_name": "市住建局"}))
    assert h.deliveries() == []
    h.handle(rating_requested())
    [d] = h.deliveries()
    assert d["recipient_role"] == "resident" and d["to"]["phone"] == RESIDENT_PHONE
    assert "7KQ4M2XC" in d["text"] and "评价" in d["text"] and "https://qx.example.cn/r/7KQ4M2XC" in d["text"]


def test_without_a_rating_link_the_resident_is_told_where_to_rate(h):
    h.report()
    h.handle(rating_requested(rate_url=None))
    [d] = h.deliveries()
    assert "小程序" in d["text"] and "7KQ4M2XC" in d["text"]


def test_a_reopened_case_tells_its_holder_and_a_merge_tells_every_reporter(h):
    h.report("a" * 32)
    h.report("b" * 32, phone="13700000007")
    h.handle(event("case.reopened", case_payload("u-nb1", reason="群众不满意，退回原办理层级重新办理", note="灯还在闪")))
    assert who(h, "case.reopened") == [("assignee", "u-nb1", "lead")]
    h.handle(event("case.merged", case_payload("u-nb1", report_id="b" * 32, linked_report_ids=["b" * 32, "a" * 32])))
    merged = h.deliveries(event_type="case.merged")
    assert sorted(d["to"]["phone"] for d in merged) == ["13700000007", RESIDENT_PHONE]
    assert {d["recipient_role"] for d in merged} == {"resident"} and all("合并办理" in d["text"] for d in merged)


def test_a_follow_up_call_is_owed_by_township_staff(h):
    h.handle(event("followup.created", {"followup_id": "f1", "report_id": "r" * 32, "tracking_no": "7KQ4M2XC",
                                        "case_id": "c" * 32, "category": "road", "resolution": 1}))
    [d] = h.deliveries(event_type="followup.created")
    assert d["recipient_kind"] == "staff" and "回访" in d["text"] and "7KQ4M2XC" in d["text"]


def test_one_resident_is_one_recipient_across_reports(h):
    h.report("a" * 32)
    h.report("b" * 32)
    h.handle(rating_requested(report_id="a" * 32, case_id="1" * 32))
    h.handle(rating_requested(report_id="b" * 32, case_id="2" * 32))
    assert len(h.deliveries()) == 2 and len({d["recipient_id"] for d in h.deliveries()}) == 1


@pytest.mark.parametrize("event_type,words", [
    ("department.assigned", ("转贵单位办理", "签收")),
    ("department.sla_breached", ("超过办理时限",)),
])
def test_departments_hear_assignment_and_missed_deadlines(tmp_path, event_type, words):
    h = Harness(tmp_path, store=MemoryStore(),
                env={"SANZHANG_NOTIFY_DEPARTMENTS": json.dumps({"d-zjj": {"phone": "13873100201",
                                                                                "wecom_id": "zjj"}})})
    payload = {"case_id": "c" * 32, "report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "department_id": "d-zjj",
               "department_name": "市住建局", "township": TOWNSHIP, "due_at": "2026-11-09T09:30:00.000000Z",
               "category": "housing"}
    h.handle(event(event_type, payload))
    [d] = h.deliveries(recipient_kind="department")   # (the resident's news is tested in test_resident_messages.py)
    assert (d["recipient_role"], d["recipient_id"], d["recipient_kind"]) == ("department", "department:d-zjj",
                                                                            "department")
    assert d["to"] == {"phone": "13873100201", "wecom_id": "zjj", "openid": None}
    assert d["text"].startswith("【三长制】市住建局：") and all(w in d["text"] for w in words)


@pytest.mark.parametrize("event_type", ["case.progress", "case.updated", "case.referred"])
def test_events_without_a_message(h, event_type):
    h.handle(event(event_type, case_payload("u-nb1", previous=assignee("u-nb1"))))
    assert h.deliveries() == []


def test_a_department_assignee_on_a_case_event_is_left_to_department_events(h):
    dept = {"level": "department", "unit_id": None, "unit_name": "市直部门", "lead_id": None, "lead_name": None,
            "lead_phone_masked": None}
    h.handle(event("case.escalated", case_payload(assignee=dept)))
    assert h.deliveries() == []


def test_contacts_changed_replaces_the_townships_directory(h):
    h.handle(event("org.contacts_changed", {"leads": [LEADS[1]]}))  # u-nb1 left the roster
    assert h.service.contacts.get("u-nb1") is None
    h.handle(event("case.assigned", case_payload("u-nb1")))
    [d] = h.deliveries()
    assert d["recipient_name"] == "周桂香" and d["phone_masked"] is None  # the name the case carries


def test_routes_naming_an_unconfigured_channel_refuse_to_start(tmp_path):
    from services.notify.config import ConfigError

    with pytest.raises(ConfigError, match="aliyun_sms"):
        Harness(tmp_path, store=MemoryStore(),
                env={"SANZHANG_NOTIFY_ROUTES": json.dumps({"default": {"resident": ["aliyun_sms"]}})})


def test_a_recipient_no_channel_can_reach_is_dead_lettered(tmp_path):
    wecom = Scripted("wecom", "wecom")
    h = Harness(tmp_path, store=MemoryStore(),
                env={"SANZHANG_NOTIFY_ROUTES": json.dumps({"default": {"resident": ["wecom"]}})},
                scripted=[wecom])
    h.report()  # a phone, no WeCom id
    resolved = event("case.accepted", case_payload())  # news for the resident
    h.handle(resolved)
    h.handle(resolved)  # redelivered: still one dead letter
    assert h.deliveries() == [] and wecom.sent == []
    [dead] = h.service.dead.find({"township": TOWNSHIP})
    assert dead["reason"] == "no_reachable_channel" and dead["recipient_role"] == "resident"
    assert dead["phone_masked"] == "139****5678"


# ---------------------------------------------------------------- the breach flow, embedded


