"""Delivery receipts pushed by the SMS platforms: Alibaba's SmsReport and Tencent's status callback,
matched by the provider's message id (or our own id, echoed), behind a shared secret; and the
delivery log staff read per case."""
from __future__ import annotations

import json
import logging

import pytest

from shared.clock import FakeClock
from shared.domain.phones import FULL_NUMBER
from shared.runtime import Runtime
from shared.web import create_app
from tests.support.runtime import make_settings, token
from tests.support.fakes import FakeAliyunSms, FakeTencentSms
from tests.support.notify import LEADS, MONDAY_9AM, RESIDENT_PHONE, TOWNSHIP, case_payload, event

SECRET = "receipt-secret-0123456789"
ALI_TEMPLATES = {"case.assigned:assignee": {"code": "SMS_470000001", "params": ["name", "tracking_no"]}}
TC_TEMPLATES = {"report.rating_requested:resident": {"id": "2100001", "params": ["tracking_no"]}}


RATING = {"report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "case_id": "c" * 32, "category": "road",
          "resolution": 1, "rate_url": "https://qx.example.cn/r/7KQ4M2XC"}


@pytest.fixture
def fakes():
    with FakeAliyunSms() as ali, FakeTencentSms() as tc:
        yield ali, tc


@pytest.fixture
def notify(tmp_path, fakes, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    ali, tc = fakes
    env = {**ali.env(templates=ALI_TEMPLATES), **tc.env(templates=TC_TEMPLATES),
           "SANZHANG_NOTIFY_ROUTES": json.dumps({"default": {"lead": ["aliyun_sms", "console"],
                                                             "resident": ["tencent_sms", "console"]}}),
           "SANZHANG_NOTIFY_RECEIPT_SECRET": SECRET}
    runtime = Runtime(make_settings(tmp_path, extra=env), ["notify"], clock=FakeClock(MONDAY_9AM))
    service = runtime.service("notify").api["service"]
    service.on_contacts_changed(event("org.contacts_changed", {"leads": LEADS}))
    yield runtime, create_app(runtime).test_client(), service
    for store in runtime.stores.values():
        store.close()


def sms_to_lead(service):
    service.on_case_event(event("case.assigned", case_payload("u-nb1")))
    [d] = service.deliveries.find({"case_id": "c" * 32})
    assert d["status"] == "sent" and d["channel"] == "aliyun_sms"
    return d


def sms_to_resident(service):
    service.on_report_submitted(event("report.submitted", {
        "report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "category": "road", "description": "路面塌陷",
        "channel": "phone", "reporter_phone": RESIDENT_PHONE, "submitted_at": "2026-11-02T01:00:00.000000Z"}))
    service.on_resident_loop_event(event("report.rating_requested", RATING))
    [d] = [d for d in service.deliveries.find({"case_id": "c" * 32}) if d["recipient_kind"] == "resident"]
    assert d["status"] == "sent" and d["channel"] == "tencent_sms"
    return d


def aliyun_report(d, success=True, **over):
    item = {"phone_number": "13873100001", "send_time": "2026-11-02 09:00:01", "report_time": "2026-11-02 09:00:05",
            "success": success, "err_code": "DELIVERED" if success else "MK:0001",
            "err_msg": "用户接收成功" if success else "空号", "sms_size": "1", "biz_id": d["provider_message_id"],
            "out_id": d["_id"]}
    item.update(over)
    return [item]


def tencent_report(d, ok=True):
    return [{"user_receive_time": "2026-11-02 09:00:05", "nationcode": "86", "mobile": RESIDENT_PHONE,
             "report_status": "SUCCESS" if ok else "FAIL", "errmsg": "DELIVRD" if ok else "MN:0001",
             "description": "用户短信送达成功" if ok else "空号", "sid": d["provider_message_id"]}]


def test_aliyun_receipt_marks_the_sms_delivered_and_a_repeat_changes_nothing(notify, caplog):
    runtime, web, service = notify
    d = sms_to_lead(service)
    with caplog.at_level(logging.INFO):
        resp = web.post(f"/api/v1/receipts/aliyun/{SECRET}", json=aliyun_report(d))
    assert resp.status_code == 200 and resp.json == {"code": 0, "msg": "接收成功"}
    after = service.deliveries.get(d["_id"])
    assert (after["status"], after["delivered_at"]) == ("delivered", "2026-11-02 09:00:05")
    version = after["version"]
    assert web.post(f"/api/v1/receipts/aliyun?key={SECRET}", json=aliyun_report(d)).status_code == 200
    assert service.deliveries.get(d["_id"])["version"] == version
    assert not FULL_NUMBER.search("\n".join(r.getMessage() for r in caplog.records))


def test_aliyun_failure_receipt_fails_the_sms_and_the_next_channel_takes_over(notify):
    runtime, web, service = notify
    d = sms_to_lead(service)
    assert web.post(f"/api/v1/receipts/aliyun/{SECRET}", json=aliyun_report(d, success=False)).status_code == 200
    failed = service.deliveries.get(d["_id"])
    assert (failed["status"], failed["error"]) == ("failed", "MK:0001")
    log = web.get(f"/api/v1/deliveries?township={TOWNSHIP}&case_id={'c' * 32}", headers=token(runtime, "staff")).json
    assert [(x["channel"], x["status"]) for x in log] == [("aliyun_sms", "failed"), ("console", "delivered")]
    assert log[1]["fallback_of"] == d["_id"]


def test_a_timed_out_sms_is_settled_by_its_receipt_through_our_own_id(notify, fakes):
    runtime, web, service = notify
    ali, _ = fakes
    service.channels["aliyun_sms"].settings = type(service.channels["aliyun_sms"].settings)(
        **{**service.channels["aliyun_sms"].settings.__dict__, "timeout": 0.3})
    ali.delay_next(1.0)
    service.on_case_event(event("case.assigned", case_payload("u-nb1")))
    [d] = service.deliveries.find({"case_id": "c" * 32})
    assert d["status"] == "unknown" and d["provider_message_id"] is None
    report = aliyun_report(d, biz_id="900000000000000000^0")  # a BizId we never saw
    assert web.post(f"/api/v1/receipts/aliyun/{SECRET}", json=report).status_code == 200
    assert service.deliveries.get(d["_id"])["status"] == "delivered"


def test_tencent_receipts_deliver_and_fail(notify):
    runtime, web, service = notify
    d = sms_to_resident(service)
    resp = web.post(f"/api/v1/receipts/tencent/{SECRET}", json=tencent_report(d, ok=False))
    assert resp.status_code == 200 and resp.json == {"result": 0, "errmsg": "OK"}
    assert service.deliveries.get(d["_id"])["status"] == "failed"
    console = [x for x in service.deliveries.find({"case_id": "c" * 32}) if x["channel"] == "console"]
    assert console and console[0]["status"] == "delivered"


def test_tencent_success_receipt(notify):
    runtime, web, service = notify
    d = sms_to_resident(service)
    assert web.post(f"/api/v1/receipts/tencent?key={SECRET}", json=tencent_report(d)).status_code == 200
    assert service.deliveries.get(d["_id"])["status"] == "delivered"


@pytest.mark.parametrize("url", [
    "/api/v1/receipts/aliyun", "/api/v1/receipts/aliyun/wrong-secret-0123456789",
    "/api/v1/receipts/aliyun?key=wrong", f"/api/v1/receipts/unknown/{SECRET}",
])
def test_receipts_without_the_secret_are_not_found_and_change_nothing(notify, url):
    runtime, web, service = notify
    d = sms_to_lead(service)
    assert web.post(url, json=aliyun_report(d)).status_code == 404
    assert service.deliveries.get(d["_id"])["status"] == "sent"


def test_receipts_are_refused_when_no_secret_is_configured(tmp_path):
    runtime = Runtime(make_settings(tmp_path), ["notify"], clock=FakeClock(MONDAY_9AM))
    web = create_app(runtime).test_client()
    assert web.post("/api/v1/receipts/aliyun/anything", json=[]).status_code == 404


@pytest.mark.parametrize("body,status", [
    ([{"success": True}], 422),                        # no biz_id
    ([{"biz_id": "x", "success": "maybe"}], 422),
    ("not a list", 400),
])
def test_malformed_receipts(notify, body, status):
    runtime, web, service = notify
    assert web.post(f"/api/v1/receipts/aliyun/{SECRET}", json=body).status_code == status


def test_an_unknown_receipt_is_acknowledged_and_ignored(notify):
    runtime, web, service = notify
    d = sms_to_lead(service)
    resp = web.post(f"/api/v1/receipts/aliyun/{SECRET}",
                    json=aliyun_report(d, biz_id="123^0", out_id="someone-elses"))
    assert resp.status_code == 200 and service.deliveries.get(d["_id"])["status"] == "sent"


def test_the_delivery_log_filters_by_status_and_hides_addresses(notify):
    runtime, web, service = notify
    sms_to_lead(service)
    staff = token(runtime, "staff")
    rows = web.get(f"/api/v1/deliveries?township={TOWNSHIP}&status=sent", headers=staff).json
    assert len(rows) == 1 and rows[0]["phone_masked"] == "138****0001"
    assert not FULL_NUMBER.search(json.dumps(rows, ensure_ascii=False))
    assert web.get(f"/api/v1/deliveries?township={TOWNSHIP}&status=lost", headers=staff).status_code == 422
