"""Each real adapter path through NotifyService, against the fake providers (tests/support/fakes): Alibaba
and Tencent SMS, WeCom and the WeChat official account — and the whole embedded system with
WeCom for leads and SMS for residents, wired by notify's composition root from the environment."""
from __future__ import annotations

import json
import logging
import re

import pytest

from shared.cli import _load_demo
from shared.domain.phones import FULL_NUMBER
from shared.runtime import SERVICES, Runtime
from tests.support.runtime import make_settings, token
from tests.support.fakes import FakeAliyunSms, FakeTencentSms, FakeWeChatMp, FakeWeCom
from tests.support.notify import (
    RESIDENT_PHONE, TOWNSHIP, Harness, assignee, case_payload, event,
)

ALI_TEMPLATES = {
    "case.assigned:assignee": {"code": "SMS_470000001", "params": ["name", "tracking_no", "due_local"]},
    "case.escalated:assignee": {"code": "SMS_470000002", "params": ["name", "tracking_no", "reason"]},
    "case.accepted:resident": {"code": "SMS_470000003", "params": ["tracking_no", "unit_name", "level_title"]},
}
TC_TEMPLATES = {
    "report.rating_requested:resident": {"id": "2100001", "params": ["tracking_no"]},
    "case.accepted:resident": {"id": "2100002", "params": ["tracking_no", "unit_name"]},
}
MP_TEMPLATES = {"case.accepted:resident": {
    "template_id": "tmplAccepted01",
    "data": {"character_string1": "tracking_no", "thing2": "unit_name", "time3": "promise_local"}}}


RATING = {"report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "case_id": "c" * 32, "category": "road",
          "resolution": 1, "rate_url": "https://qx.example.cn/r/7KQ4M2XC"}


@pytest.fixture
def ali():
    with FakeAliyunSms(sign_names={"三长办"}, templates={"SMS_470000001": ["name", "tracking_no", "due_local"],
                                                         "SMS_470000002": ["name", "tracking_no", "reason"],
                                                         "SMS_470000003": ["tracking_no", "unit_name"]}) as fake:
        yield fake


@pytest.fixture
def tc():
    with FakeTencentSms(sign_names={"三长办"}, templates={"2100001": 1, "2100002": 2}) as fake:
        yield fake


@pytest.fixture
def wecom():
    with FakeWeCom(users={"zhouguixiang", "penglixin", "lichunsheng"}) as fake:
        yield fake


@pytest.fixture
def mp():
    with FakeWeChatMp(templates={"tmplAccepted01": ["character_string1", "thing2", "time3"]},
                      subscribers={"oRESIDENTopenid01"}) as fake:
        yield fake


def routes(**kinds) -> dict:
    return {"SANZHANG_NOTIFY_ROUTES": json.dumps({"default": kinds})}


# ---------------------------------------------------------------- Alibaba Cloud SMS


def test_aliyun_sms_to_a_lead(tmp_path, ali):
    h = Harness(tmp_path, {**ali.env(templates=ALI_TEMPLATES), **routes(lead=["aliyun_sms", "console"])})
    h.handle(event("case.assigned", case_payload("u-nb1")))
    [sent] = ali.sent
    assert sent["PhoneNumbers"] == "13873100001" and sent["TemplateCode"] == "SMS_470000001"
    assert json.loads(sent["TemplateParam"]) == {"name": "周桂香", "tracking_no": "7KQ4M2XC",
                                                  "due_local": "11月04日17:30"}
    [d] = h.deliveries()
    assert d["channel"] == "aliyun_sms" and d["status"] == "sent" and sent["OutId"] == d["_id"]
    assert d["provider_message_id"].endswith("^0") and d["attempts"] == 1
    assert d["text"].startswith("【三长办】") and d["segments"] == 1  # the SMS sign name is the signature
    assert ali.problems == []


def test_aliyun_flow_control_is_retried_after_backoff(tmp_path, ali):
    h = Harness(tmp_path, {**ali.env(templates=ALI_TEMPLATES), **routes(lead=["aliyun_sms", "console"])})
    ali.fail_next("isv.BUSINESS_LIMIT_CONTROL")
    h.handle(event("case.assigned", case_payload("u-nb1")))
    [d] = h.deliveries()
    assert (d["status"], d["error"], d["attempts"]) == ("retrying", "isv.BUSINESS_LIMIT_CONTROL", 1)
    assert d["next_attempt_at"] == "2026-11-02T01:00:30.000000Z"
    h.clock.advance(seconds=29)
    assert h.sweep() == 0
    h.clock.advance(seconds=1)
    assert h.sweep() == 1
    [d] = h.deliveries()
    assert (d["status"], d["attempts"]) == ("sent", 2) and len(ali.sent) == 1
    assert ali.problems == []


def test_aliyun_refusing_the_number_falls_back_to_the_next_channel(tmp_path, ali):
    h = Harness(tmp_path, {**ali.env(templates=ALI_TEMPLATES), **routes(lead=["aliyun_sms", "console"])})
    ali.fail_next("isv.MOBILE_NUMBER_ILLEGAL")
    h.handle(event("case.assigned", case_payload("u-nb1")))
    first, second = h.deliveries()
    assert (first["channel"], first["status"], first["error"]) == ("aliyun_sms", "failed", "isv.MOBILE_NUMBER_ILLEGAL")
    assert (second["channel"], second["status"], second["fallback_of"]) == ("console", "delivered", first["_id"])


def test_aliyun_timeout_is_unknown_and_never_sent_again(tmp_path, ali):
    env = {**ali.env(templates=ALI_TEMPLATES), **routes(lead=["aliyun_sms", "console"]),
           "SANZHANG_ALIYUN_SMS_TIMEOUT": "0.3"}
    h = Harness(tmp_path, env)
    ali.delay_next(1.0)
    h.handle(event("case.assigned", case_payload("u-nb1")))
    [d] = h.deliveries()
    assert (d["status"], d["error"], d["due_at"]) == ("unknown", "timeout", None)
    h.clock.advance(hours=6)
    assert h.sweep() == 0
    assert len(ali.calls("send")) == 1 and len(h.deliveries()) == 1  # no retry, no second channel


# ---------------------------------------------------------------- Tencent Cloud SMS


def test_tencent_sms_to_a_resident(tmp_path, tc):
    h = Harness(tmp_path, {**tc.env(templates=TC_TEMPLATES), **routes(resident=["tencent_sms"])})
    h.report()
    h.handle(event("report.rating_requested", RATING))
    [body] = tc.sent
    [d] = h.deliveries()
    assert body["PhoneNumberSet"] == ["+86" + RESIDENT_PHONE] and body["TemplateId"] == "2100001"
    assert body["TemplateParamSet"] == ["7KQ4M2XC"] and body["SessionContext"] == d["_id"]
    assert d["status"] == "sent" and d["provider_message_id"].startswith("2433:")
    assert tc.problems == []


def test_tencent_blacklisted_number_is_a_dead_letter_when_nothing_else_is_routed(tmp_path):
    with FakeTencentSms(templates={"2100001": 1}, blacklist={"+86" + RESIDENT_PHONE}) as tc:
        h = Harness(tmp_path, {**tc.env(templates=TC_TEMPLATES), **routes(resident=["tencent_sms"])})
        h.report()
        h.handle(event("report.rating_requested", RATING))
        [d] = h.deliveries()
        assert (d["status"], d["error"]) == ("failed", "FailedOperation.PhoneNumberInBlacklist")
        [dead] = h.service.dead.find({"township": TOWNSHIP})
        assert dead["reason"] == "FailedOperation.PhoneNumberInBlacklist" and dead["last_delivery_id"] == d["_id"]


# ---------------------------------------------------------------- WeCom


def test_wecom_to_leads_with_one_token(tmp_path, wecom, ali):
    env = {**wecom.env(), **ali.env(templates=ALI_TEMPLATES), **routes(lead=["wecom", "aliyun_sms"])}
    h = Harness(tmp_path, env)
    h.handle(event("case.escalated", case_payload("u-grp1", previous=assignee("u-nb1"), reason="超出本级处理能力")))
    h.handle(event("case.assigned", case_payload("u-nb2", case_id="2" * 32)))
    assert [m["touser"] for m in wecom.sent] == ["penglixin", "lichunsheng"]
    texts = {d["recipient_id"]: d for d in h.deliveries()}
    assert wecom.sent[0]["text"]["content"] == texts["u-grp1"]["text"]
    assert {d["channel"] for d in texts.values()} == {"wecom"} and ali.sent == []
    assert texts["u-grp1"]["provider_message_id"] == "fake-msgid-1"
    assert wecom.token_calls == 1 and wecom.problems == []


def test_wecom_user_outside_the_app_falls_back_to_sms(tmp_path, ali):
    with FakeWeCom(users={"someone_else"}) as wecom:
        env = {**wecom.env(), **ali.env(templates=ALI_TEMPLATES), **routes(lead=["wecom", "aliyun_sms"])}
        h = Harness(tmp_path, env)
        h.handle(event("case.escalated", case_payload("u-grp1", previous=assignee("u-nb1"), reason="超时未接单")))
        first, second = h.deliveries()
        assert (first["channel"], first["status"], first["error"]) == ("wecom", "failed", "81013")
        assert (second["channel"], second["status"]) == ("aliyun_sms", "sent")
        assert [s["PhoneNumbers"] for s in ali.sent] == ["13873100003"]


# ---------------------------------------------------------------- WeChat official account


def test_wechat_subscribe_message_to_a_resident(tmp_path, mp, tc):
    env = {**mp.env(templates=MP_TEMPLATES, page="https://example.cn/r/{tracking_no}"),
           **tc.env(templates=TC_TEMPLATES), **routes(resident=["wechat_mp", "tencent_sms"])}
    h = Harness(tmp_path, env)
    h.report(openid="oRESIDENTopenid01")
    h.handle(event("case.accepted", case_payload()))
    [body] = mp.sent
    assert body["touser"] == "oRESIDENTopenid01" and body["template_id"] == "tmplAccepted01"
    assert body["data"]["character_string1"]["value"] == "7KQ4M2XC"
    assert body["page"] == "https://example.cn/r/7KQ4M2XC"
    [d] = h.deliveries()
    assert d["channel"] == "wechat_mp" and d["status"] == "sent" and tc.sent == []
    assert mp.problems == []


def test_wechat_refused_subscription_falls_back_to_sms(tmp_path, tc):
    with FakeWeChatMp(templates={"tmplAccepted01": ["character_string1", "thing2", "time3"]},
                      subscribers=set()) as mp:
        env = {**mp.env(templates=MP_TEMPLATES), **tc.env(templates=TC_TEMPLATES),
               **routes(resident=["wechat_mp", "tencent_sms"])}
        h = Harness(tmp_path, env)
        h.report(openid="oRESIDENTopenid01")
        h.handle(event("case.accepted", case_payload()))
        first, second = h.deliveries()
        assert (first["channel"], first["error"]) == ("wechat_mp", "43101")
        assert (second["channel"], second["status"]) == ("tencent_sms", "sent")
        assert tc.sent[0]["TemplateParamSet"] == ["7KQ4M2XC", "第1邻"]


def test_a_resident_without_openid_skips_wechat(tmp_path, mp, tc):
    env = {**mp.env(templates=MP_TEMPLATES), **tc.env(templates=TC_TEMPLATES),
           **routes(resident=["wechat_mp", "tencent_sms"])}
    h = Harness(tmp_path, env)
    h.report()
    h.handle(event("case.accepted", case_payload()))
    [d] = h.deliveries()
    assert d["channel"] == "tencent_sms" and mp.calls("send") == []


# ---------------------------------------------------------------- the whole embedded system


