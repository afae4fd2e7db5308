"""A message meant for a post nobody can be reached at goes to the next person who can act, and says
why (services/notify/recipients.py): village committees' duty contacts, township staff, the climb
邻 → 组 → 片 → 村 → 镇, the delivery log's record of it, and the console channel showing a missing address."""
from __future__ import annotations

import json

import pytest

from services.notify.channels import ConsoleChannel, OutboundMessage
from tests.support.fakes.memory_store import MemoryStore
from tests.support.notify import LEADS, TOWNSHIP, Harness, Scripted, case_payload, event

STAFF = {"unit_id": "t-" + TOWNSHIP, "level": "township", "unit_name": "清溪镇", "parent_id": None, "people": [
    {"contact_id": "c-t1", "name": "刘晓东", "duty": "值班", "phone": "13873300005", "wecom_id": "liuxiaodong",
     "precedence": 1},
    {"contact_id": "c-t2", "name": "谭振宇", "duty": "分管领导", "phone": "13873300006", "wecom_id": None,
     "precedence": 2}]}
VILLAGE = {"unit_id": "u-vil1", "level": "village", "unit_name": "韶山村", "parent_id": STAFF["unit_id"], "people": [
    {"contact_id": "c-v1", "name": "毛建国", "duty": "值班", "phone": "13873300001", "wecom_id": None, "precedence": 1},
    {"contact_id": "c-v2", "name": "彭志强", "duty": "书记", "phone": None, "wecom_id": "pengzhiqiang",
     "precedence": 2}]}
NO_ADDRESS = {"unit_id": "u-nb3", "level": "neighbourhood", "unit_name": "第3邻", "parent_id": "u-grp1",
              "people": [{"name": "王无号", "phone": None, "wecom_id": None, "precedence": 1}]}


def lead_post(lead: dict) -> dict:
    return {"unit_id": lead["unit_id"], "level": lead["level"], "unit_name": lead["unit_name"],
            "parent_id": lead["parent_id"] if lead["level"] != "area" else VILLAGE["unit_id"],
            "people": [{"name": lead["name"], "phone": lead["phone"], "wecom_id": lead["wecom_id"], "precedence": 1}]}


def posts(*changed: dict) -> list[dict]:
    by_id = {p["unit_id"]: p for p in [lead_post(l) for l in LEADS if l["level"] != "township"]}
    by_id.update({p["unit_id"]: p for p in (STAFF, VILLAGE, NO_ADDRESS, *changed)})
    return list(by_id.values())


def harness(tmp_path, routes=None, *changed, scripted=(), leads=LEADS) -> Harness:
    env = {"SANZHANG_NOTIFY_ROUTES": json.dumps({"default": routes})} if routes else {}
    h = Harness(tmp_path, env, scripted=list(scripted), store=MemoryStore())
    h.handle(event("org.contacts_changed", {"leads": leads, "posts": posts(*changed)}))
    return h


# The township unit's own contact (the directory's last resort) left out: nobody at all.
NO_TOWNSHIP_CONTACT = [lead for lead in LEADS if lead["level"] != "township"]


def at(unit_id: str, level: str, name: str) -> dict:
    return {"level": level, "unit_id": unit_id, "unit_name": name, "lead_id": None, "lead_name": None,
            "lead_phone_masked": None}


def test_a_case_escalated_to_a_village_reaches_its_first_duty_contact_by_sms(tmp_path):
    sms = Scripted("aliyun_sms", "phone")
    h = harness(tmp_path, {"lead": ["aliyun_sms"]}, scripted=[sms])
    h.handle(event("case.escalated", case_payload(assignee=at("u-vil1", "village", "韶山村"), reason="超时未办结")))
    [d] = h.deliveries()
    assert (d["recipient_id"], d["recipient_name"], d["channel"], d["status"]) == ("contact:c-v1", "毛建国",
                                                                                  "aliyun_sms", "sent")
    assert d["forwarded_from"] is None and d["text"].startswith("【三长制】毛建国您好")
    assert [m.phone for m in sms.sent] == ["13873300001"]


def test_the_village_contact_the_route_can_reach_is_chosen_over_an_earlier_one_it_cannot(tmp_path):
    wecom = Scripted("wecom", "wecom")
    h = harness(tmp_path, {"lead": ["wecom"]}, scripted=[wecom])
    h.handle(event("case.escalated", case_payload(assignee=at("u-vil1", "village", "韶山村"))))
    [d] = h.deliveries()
    assert (d["recipient_id"], d["recipient_name"]) == ("contact:c-v2", "彭志强")
    assert [m.wecom_user for m in wecom.sent] == ["pengzhiqiang"]


def test_a_lead_without_any_address_is_passed_to_the_post_above_with_the_reason(tmp_path):
    h = harness(tmp_path)
    h.handle(event("case.assigned", case_payload(assignee=at("u-nb3", "neighbourhood", "第3邻"))))
    [d] = h.deliveries()
    assert (d["recipient_id"], d["recipient_name"], d["status"]) == ("u-grp1", "彭立新", "delivered")
    assert d["text"].startswith("【三长制】原收件人（第3邻邻长王无号）无有效联系方式，转您处理。彭立新您好")
    assert d["forwarded_from"]["unit_id"] == "u-nb3" and d["forwarded_from"]["label"] == "第3邻邻长王无号"
    assert d["params"]["forwarded_from"] == "第3邻邻长王无号" and not d["address_missing"]


def test_a_village_nobody_can_reach_passes_to_the_townships_first_staff(tmp_path):
    unreachable = {**VILLAGE, "people": [{"contact_id": "c-v9", "name": "村部座机", "phone": "0731-55512345",
                                          "precedence": 1}]}
    h = harness(tmp_path, None, unreachable)
    h.handle(event("case.escalated", case_payload(assignee=at("u-vil1", "village", "韶山村"))))
    [d] = h.deliveries()
    assert (d["recipient_id"], d["recipient_kind"]) == ("contact:c-t1", "staff")
    assert "原收件人（韶山村两委）无有效联系方式，转您处理" in d["text"]


def test_a_township_holder_is_the_first_imported_staff_member(tmp_path):
    h = harness(tmp_path)
    h.handle(event("case.escalated", case_payload(assignee=at("t-" + TOWNSHIP, "township", "清溪镇"))))
    assert [(d["recipient_id"], d["recipient_name"]) for d in h.deliveries()] == [("contact:c-t1", "刘晓东")]


def test_configured_township_staff_still_come_first(tmp_path):
    env = {"SANZHANG_NOTIFY_TOWNSHIP_STAFF": json.dumps({TOWNSHIP: [{"name": "综治中心", "phone": "13873100009"}]})}
    h = Harness(tmp_path, env, store=MemoryStore())
    h.handle(event("org.contacts_changed", {"leads": LEADS, "posts": posts()}))
    h.handle(event("sla.breached", case_payload(assignee=at("u-nb1", "neighbourhood", "第1邻"))))
    assert [d["recipient_name"] for d in h.deliveries(recipient_role="township")] == ["综治中心"]


def test_the_supervisor_of_an_unreachable_posts_child_is_found_above_it(tmp_path):
    grp = {**lead_post(next(l for l in LEADS if l["unit_id"] == "u-grp1")),
           "people": [{"name": "彭立新", "phone": None, "wecom_id": None, "precedence": 1}]}
    h = harness(tmp_path, None, grp)
    h.handle(event("sla.warning", case_payload("u-nb1", due_at="2026-11-02T03:00:00.000000Z")))
    sup = h.one(recipient_role="supervisor")
    assert sup["recipient_id"] == "u-area1" and "原收件人（一组组长彭立新）" in sup["text"]


def test_nobody_reachable_anywhere_is_never_nowhere(tmp_path):
    empty = [{**p, "people": []} for p in posts() if p["level"] in ("village", "township")]
    h = harness(tmp_path, {"lead": ["aliyun_sms"], "staff": ["aliyun_sms"]}, NO_ADDRESS, *empty,
                scripted=[Scripted("aliyun_sms", "phone")], leads=NO_TOWNSHIP_CONTACT)
    h.handle(event("case.escalated", case_payload(assignee=at("u-vil1", "village", "韶山村"))))
    assert h.deliveries() == []
    [dead] = h.service.dead.find({"township": TOWNSHIP})
    assert dead["reason"] == "no_reachable_channel" and dead["recipient_role"] == "assignee"
    assert "原收件人（韶山村两委）无有效联系方式" in dead["text"]


def test_on_the_console_a_missing_address_is_recorded_visibly(tmp_path):
    empty = [{**p, "people": []} for p in posts() if p["level"] in ("village", "township")]
    h = harness(tmp_path, None, *empty, leads=NO_TOWNSHIP_CONTACT)
    h.handle(event("case.escalated", case_payload(assignee=at("u-vil1", "village", "韶山村"))))
    [d] = h.deliveries()
    assert d["status"] == "delivered" and d["address_missing"] and d["recipient_kind"] == "staff"


@pytest.mark.parametrize("phone,wecom,openid,address", [
    ("13873300001", None, None, "138****0001"), (None, "maojianguo", None, "wecom:maojianguo"),
    (None, None, "o-123", "openid:o-123"), (None, None, None, None),
])
def test_the_console_records_the_address_a_real_channel_would_have_used(phone, wecom, openid, address):
    entries = []
    ConsoleChannel(entries.append).send(OutboundMessage("m1", "contact:c-v1", phone, wecom, openid,
                                                        "case.assigned:assignee", {}, "text", TOWNSHIP))
    [entry] = entries
    assert (entry["address"], entry["unreachable"]) == (address, address is None)


def test_news_for_a_holder_the_case_has_left_does_not_climb(tmp_path):
    h = harness(tmp_path)
    h.handle(event("case.reassigned", case_payload("u-nb1", previous=at("u-nb3", "neighbourhood", "第3邻"))))
    old = h.one(recipient_role="previous")
    assert old["recipient_id"] == "u-nb3" and old["forwarded_from"] is None and old["address_missing"]
    assert h.one(recipient_role="assignee")["recipient_id"] == "u-nb1"
