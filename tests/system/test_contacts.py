"""Village committees' and township staff's contacts through the embedded runtime over HTTP: the roster
import's answer and GET …/reachability list the posts nobody can be reached at, the contacts import and
API fill them, the board shows them; a case escalated to a village reaches its duty contact over the
SMS provider's fake, and a post nobody can reach passes its message to the next person who can act."""
from __future__ import annotations

import json

import pytest

from services.dispatch.demo_roster import demo_contacts_csv, demo_roster_csv
from shared.domain.ids import case_id_for
from shared.runtime import SERVICES, Runtime
from tests.support.fakes import FakeAliyunSms
from tests.support.runtime import ADMIN, make_settings, token

TOWNSHIP = "430382100"
OTHER = "430382101"
ALI_TEMPLATES = {
    "case.assigned:assignee": {"code": "SMS_470000001", "params": ["name", "tracking_no", "due_local"]},
    "case.escalated:assignee": {"code": "SMS_470000002", "params": ["name", "tracking_no", "reason"]},
}


@pytest.fixture
def ali():
    with FakeAliyunSms(sign_names={"三长办"}, templates={
            "SMS_470000001": ["name", "tracking_no", "due_local"],
            "SMS_470000002": ["name", "tracking_no", "reason"]}) as fake:
        yield fake


@pytest.fixture
def system(tmp_path, clock, ali, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    env = {**ali.env(templates=ALI_TEMPLATES),
           "SANZHANG_NOTIFY_ROUTES": json.dumps({"default": {"lead": ["aliyun_sms"], "staff": ["aliyun_sms"],
                                                             "resident": ["console"]}})}
    runtime = Runtime(make_settings(tmp_path, extra=env), SERVICES, clock=clock).start()
    runtime.service("dispatch").api["sweeper"].stop()
    yield runtime
    runtime.stop()


@pytest.fixture
def web(system):
    from shared.web import create_app

    return create_app(system).test_client()


@pytest.fixture
def staff(system, web):
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert web.post("/api/v1/admin/townships", json={"code": TOWNSHIP, "name": "清溪镇"}, headers=admin).status_code == 201
    return token(system, "staff")


def upload(web, path: str, data: bytes, filename: str, headers: dict):
    return web.post(path, data=data, query_string={"filename": filename}, headers=headers)


def roster(web, staff) -> dict:
    resp = upload(web, f"/api/v1/townships/{TOWNSHIP}/roster", demo_roster_csv(), "roster.csv", staff)
    assert resp.status_code == 201, resp.json
    return resp.json


def contacts(web, staff) -> dict:
    resp = upload(web, f"/api/v1/townships/{TOWNSHIP}/contacts-import", demo_contacts_csv(), "contacts.csv", staff)
    assert resp.status_code == 201, resp.json
    return resp.json


def test_posts_nobody_can_reach_are_listed_at_import_by_the_endpoint_and_on_the_board(system, web, staff):
    listed = roster(web, staff)["unreachable"]
    assert sorted((r["level"], r["unit_name"]) for r in listed) == [
        ("township", "清溪镇"), ("village", "银田村"), ("village", "韶山村")]
    assert all(r["reason"] == "未登记联系人" for r in listed)
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/reachability", headers=staff).json["unreachable"] == listed
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/board", headers=staff).json["unreachable_posts"] == listed
    answer = contacts(web, staff)
    assert answer["counts"] == {"contacts": 6} and answer["unreachable"] == []
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/board", headers=staff).json["unreachable_posts"] == []
    page = web.get(f"/board/{TOWNSHIP}").get_data(as_text=True)
    assert "无人可联系的岗位" in page


def test_the_contacts_api_lists_adds_changes_and_removes_with_phones_masked(system, web, staff):
    roster(web, staff)
    contacts(web, staff)
    base = f"/api/v1/townships/{TOWNSHIP}/contacts"
    listed = web.get(base, headers=staff).json
    assert len(listed) == 6 and listed[0]["level"] == "township" and listed[0]["phone"].startswith("138****")
    added = web.post(base, json={"village": "韶山村", "name": "李四", "duty": "主任", "phone": "13873309999"},
                     headers=staff)
    assert added.status_code == 201 and added.json["phone"] == "138****9999" and added.json["precedence"] == 3
    again = web.post(base, json={"village": "韶山村", "name": "李四", "wecom_id": "lisi"}, headers=staff)
    assert again.status_code == 409
    bad = web.post(base, json={"village": "红星村", "name": "王五", "phone": "123"}, headers=staff)
    assert bad.status_code == 422 and set(bad.json["errors"]["json"]) == {"village", "phone"}
    assert "不在花名册中" in bad.json["errors"]["json"]["village"][0]
    smuggled = web.post(base, json={"name": "王五", "phone": "13873309998", "township": OTHER}, headers=staff)
    assert smuggled.status_code == 422 and "township" in smuggled.json["errors"]["json"]
    one = f"{base}/{added.json['id']}"
    changed = web.put(one, json={"village": "韶山村", "name": "李四", "duty": "值班", "wecom_id": "lisi"}, headers=staff)
    assert changed.status_code == 200 and changed.json["phone"] is None and changed.json["wecom_id"] == "lisi"
    foreign = token(system, "staff", townships=(OTHER,))
    assert web.delete(f"/api/v1/townships/{OTHER}/contacts/{added.json['id']}", headers=foreign).status_code == 404
    assert web.delete(one, headers=foreign).status_code == 404
    assert web.delete(one, headers=staff).status_code == 204
    assert len(web.get(base, headers=staff).json) == 6
    assert web.get(base).status_code == 401


def test_a_bad_contacts_file_is_refused_whole_with_each_row_named(system, web, staff):
    roster(web, staff)
    contacts(web, staff)
    data = "村(社区),姓名,电话\r\n韶山村,毛建国,13873300001\r\n红星村,张三,13873300002\r\n韶山村,,1\r\n".encode("gbk")
    resp = upload(web, f"/api/v1/townships/{TOWNSHIP}/contacts-import", data, "c.csv", staff)
    assert resp.status_code == 422
    rows = [(e["row"], e["column"]) for e in resp.json["errors"]["file"]]
    assert rows == [(3, "村(社区)"), (4, "姓名"), (4, "电话")]
    assert len(web.get(f"/api/v1/townships/{TOWNSHIP}/contacts", headers=staff).json) == 6  # nothing half written


def escalate(system, web, case_id: str, unit: dict) -> dict:
    lead = token(system, "lead", unit_id=unit["_id"], name=unit["lead"]["name"])
    resp = web.post(f"/api/v1/cases/{case_id}/escalate", json={"reason": "beyond_ability"}, headers=lead)
    assert resp.status_code == 200, resp.json
    assert system.drain()
    return resp.json


def open_case(system, web) -> tuple[str, dict]:
    body = {"township": TOWNSHIP, "address": "韶山村一组12号", "category": "environment",
            "description": "门口路灯坏了一个星期", "reporter_phone": "13800000001", "channel": "mini_program"}
    resp = web.post("/api/v1/reports", json=body, headers=token(system, "client"))
    assert resp.status_code == 201 and system.drain()
    org = system.service("dispatch").api["org"]
    chain = {u["level"]: u for u in org.chain_from(system.service("dispatch").api["cases"].get(
        case_id_for(resp.json["id"]))["unit_id"])}
    return case_id_for(resp.json["id"]), chain


def test_a_case_escalated_to_a_village_reaches_its_duty_contact_by_sms(system, web, staff, ali):
    roster(web, staff)
    contacts(web, staff)
    case_id, chain = open_case(system, web)
    for level in ("neighbourhood", "group", "area"):
        escalate(system, web, case_id, chain[level])
    last = ali.sent[-1]
    assert last["PhoneNumbers"] == "13873300001" and last["TemplateCode"] == "SMS_470000002"
    assert json.loads(last["TemplateParam"])["name"] == "毛建国"


def test_a_post_nobody_can_reach_passes_the_message_on_and_the_log_says_why(system, web, staff, ali):
    roster(web, staff)
    contacts(web, staff)
    case_id, chain = open_case(system, web)
    org = system.service("dispatch").api["org"]
    org.fill_post(chain["area"]["_id"], {"name": "毛建华", "phone": "0731-55512345"}, actor="staff")  # a landline
    reach = web.get(f"/api/v1/townships/{TOWNSHIP}/reachability", headers=staff).json["unreachable"]
    assert [(r["unit_name"], r["title"]) for r in reach] == [("一片", "片长")] and "手机号" in reach[0]["reason"]
    assert system.drain()
    for level in ("neighbourhood", "group"):
        escalate(system, web, case_id, chain[level])
    last = ali.sent[-1]
    assert last["PhoneNumbers"] == "13873300001" and json.loads(last["TemplateParam"])["name"] == "毛建国"
    log = web.get("/api/v1/deliveries", query_string={"township": TOWNSHIP, "case_id": case_id}, headers=staff).json
    forwarded = [d for d in log if d.get("forwarded_from")]
    assert len(forwarded) == 1 and forwarded[0]["recipient_name"] == "毛建国"
    assert forwarded[0]["text"].startswith("【三长办】原收件人（一片片长毛建华）无有效联系方式，转您处理。")
