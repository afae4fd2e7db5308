"""Outbound channel adapters against local fakes of the providers (tests/support/fakes/providers.py)."""
from __future__ import annotations

import itertools
import json
import logging
import socket
from datetime import datetime, timedelta, timezone

import pytest

from services.notify.channels import (
    AliyunSmsChannel, Channel, ConsoleChannel, OutboundMessage, PermanentSendError,
    RetryableSendError, SendError, TencentSmsChannel, WeChatMpChannel, WeComChannel,
    build_channels,
)
from services.notify.channels import aliyun_sms, tencent_sms
from services.notify.channels.base import AccessTokenCache, scrub
from shared.domain import phones
from services.notify.channels.wechat_mp import fit_value
from tests.support.fakes import (
    FakeAliyunSms, FakeTencentSms, FakeWeChatMp, FakeWeCom, no_proxy_opener,
)
from tests.support.fakes.providers import aliyun_expected_signature, tc3_expected_signature

FIXED = datetime(2024, 5, 20, 1, 2, 3, tzinfo=timezone.utc)
PHONE = "13812345678"


class Clock:
    def __init__(self, start: datetime = FIXED):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw):
        self.now += timedelta(**kw)


def nonces():
    counter = itertools.count(1)
    return lambda: f"nonce-{next(counter)}"


def message(**over) -> OutboundMessage:
    base = dict(
        message_id="dlv-0001", recipient_id="lead-42", phone=PHONE, wecom_user="zhangsan",
        openid="oFAKEopenid0001", template="case.assigned",
        params={"case_no": "SS-2024-0031", "title": "韶山冲村3组路灯不亮，夜间出行不便，请尽快处理", "due": "5月22日"},
        text="【三长办】工单SS-2024-0031已派给您：韶山冲村3组路灯不亮，请于5月22日前办结。",
        township="430382100",
    )
    base.update(over)
    return OutboundMessage(**base)


_NONCES = nonces()  # shared: a fake remembers nonces across channels, as Alibaba does


def build(cls, env, clock=None, nonce=None, **settings_over):
    channel = cls.from_env(env, now=clock or Clock(), new_nonce=nonce or _NONCES, opener=no_proxy_opener())
    assert channel is not None
    if settings_over:
        from dataclasses import replace
        channel.settings = replace(channel.settings, **settings_over)
    return channel


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ================================================================ Alibaba Cloud SMS

ALI_TEMPLATES = {"case.assigned": {"code": "SMS_465000001", "params": ["case_no", "due"]},
                 "case.resolved": "SMS_465000002"}


@pytest.fixture
def ali():
    with FakeAliyunSms(sign_names={"三长办"}, templates={"SMS_465000001": ["case_no", "due"],
                                                         "SMS_465000002": []}) as fake:
        yield fake


def test_aliyun_send_success_and_request_format(ali):
    channel = build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES), nonce=lambda: "nonce-1")
    result = channel.send(message())

    assert ali.problems == []
    assert result.status == "sent" and result.provider_message_id.endswith("^0")
    [req] = ali.requests
    assert req.method == "POST" and req.path == "/" and req.query == {}
    form = req.form()
    assert {k: form[k] for k in ("Action", "Version", "Format", "SignatureMethod", "SignatureVersion",
                                 "RegionId", "AccessKeyId")} == {
        "Action": "SendSms", "Version": "2017-05-25", "Format": "JSON", "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0", "RegionId": "cn-hangzhou", "AccessKeyId": ali.access_key_id}
    assert form["Timestamp"] == "2024-05-20T01:02:03Z"
    assert form["SignatureNonce"] == "nonce-1"
    assert form["PhoneNumbers"] == PHONE and form["SignName"] == "三长办"
    assert form["TemplateCode"] == "SMS_465000001" and form["OutId"] == "dlv-0001"
    assert json.loads(form["TemplateParam"]) == {"case_no": "SS-2024-0031", "due": "5月22日"}


def test_aliyun_signature_survives_awkward_characters(ali):
    # Space, *, ~, + and CJK are where Alibaba's encoding differs from form encoding.
    channel = build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES))
    result = channel.send(message(params={"case_no": "A b*c~d+e/f", "due": "5月22日 18:00"}))
    assert result.status == "sent" and ali.problems == []
    assert json.loads(ali.sent[0]["TemplateParam"])["case_no"] == "A b*c~d+e/f"


def test_aliyun_normalises_prefixed_numbers(ali):
    channel = build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES))
    channel.send(message(phone="+86 138-1234-5678"))
    assert ali.requests[0].form()["PhoneNumbers"] == PHONE


def test_aliyun_wrong_secret_is_permanent_signature_error_without_the_phone(ali):
    env = ali.env(templates=ALI_TEMPLATES) | {"SANZHANG_ALIYUN_SMS_ACCESS_KEY_SECRET": "wrong"}
    with pytest.raises(PermanentSendError) as info:
        build(AliyunSmsChannel, env).send(message())
    assert info.value.code == "SignatureDoesNotMatch"
    # Alibaba echoes its whole string to sign, phone number included; it must not travel on.
    assert PHONE not in str(info.value) and "omitted" in info.value.message


def test_aliyun_unknown_access_key_is_permanent(ali):
    env = ali.env(templates=ALI_TEMPLATES) | {"SANZHANG_ALIYUN_SMS_ACCESS_KEY_ID": "LTAIunknown"}
    with pytest.raises(PermanentSendError) as info:
        build(AliyunSmsChannel, env).send(message())
    assert info.value.code == "InvalidAccessKeyId.NotFound"


@pytest.mark.parametrize("code, retryable", [
    ("isv.BUSINESS_LIMIT_CONTROL", True), ("Throttling.User", True), ("isp.SYSTEM_ERROR", True),
    ("ServiceUnavailable", True),
    ("isv.MOBILE_NUMBER_ILLEGAL", False), ("isv.SMS_TEMPLATE_ILLEGAL", False),
    ("isv.SMS_SIGNATURE_ILLEGAL", False), ("isv.TEMPLATE_MISSING_PARAMETERS", False),
    ("isv.SOMETHING_NEW", False),
])
def test_aliyun_error_mapping(ali, code, retryable):
    ali.fail_next(code)
    with pytest.raises(SendError) as info:
        build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES)).send(message())
    assert info.value.code == code
    assert isinstance(info.value, RetryableSendError if retryable else PermanentSendError)
    assert ali.problems == []


def test_aliyun_provider_side_validation_is_permanent(ali):
    templates = {"case.assigned": "SMS_NOT_APPROVED"}
    with pytest.raises(PermanentSendError) as info:
        build(AliyunSmsChannel, ali.env(templates=templates)).send(message())
    assert info.value.code == "isv.SMS_TEMPLATE_ILLEGAL"
    with pytest.raises(PermanentSendError) as info:
        build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES, sign_name="未报备")).send(message())
    assert info.value.code == "isv.SMS_SIGNATURE_ILLEGAL"


def test_aliyun_reused_nonce_is_retryable(ali):
    channel = build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES), nonce=lambda: "same")
    channel.send(message())
    with pytest.raises(RetryableSendError) as info:
        channel.send(message(message_id="dlv-0002"))
    assert info.value.code == "SignatureNonceUsed"


def test_aliyun_http_5xx_without_json_is_retryable(ali):
    ali.reply_next_raw(502, b"<html><body>502 Bad Gateway</body></html>")
    with pytest.raises(RetryableSendError) as info:
        build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES)).send(message())
    assert info.value.code == "http_502"


def test_aliyun_timeout_is_retryable(ali):
    ali.delay_next(1.0)
    channel = build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES), timeout=0.2)
    with pytest.raises(RetryableSendError) as info:
        channel.send(message())
    assert info.value.code == "timeout"


def test_aliyun_connection_refused_is_retryable(ali):
    env = ali.env(templates=ALI_TEMPLATES) | {
        "SANZHANG_ALIYUN_SMS_ENDPOINT": f"http://127.0.0.1:{closed_port()}/"}
    with pytest.raises(RetryableSendError) as info:
        build(AliyunSmsChannel, env).send(message())
    assert info.value.code == "network"


def test_aliyun_can_reach_needs_valid_mobile_and_mapped_template(ali):
    channel = build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES))
    assert channel.can_reach(message())
    assert not channel.can_reach(message(phone=None))
    assert not channel.can_reach(message(phone="0731-5556789"))
    assert not channel.can_reach(message(template="case.unknown"))
    with pytest.raises(PermanentSendError):
        channel.send(message(phone="12345"))
    assert ali.requests == []


# ================================================================ Tencent Cloud SMS

TC_TEMPLATES = {"case.assigned": {"id": "2041001", "params": ["case_no", "due"]}}


@pytest.fixture
def tc():
    with FakeTencentSms(sign_names={"三长办"}, templates={"2041001": 2},
                        blacklist={"+8613900000000"}) as fake:
        yield fake


DOC_BODY = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
DOC_SIGNATURE = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


def test_tencent_send_success_and_request_format(tc):
    result = build(TencentSmsChannel, tc.env(templates=TC_TEMPLATES)).send(message())

    assert tc.problems == []
    assert result.status == "sent" and result.provider_message_id.startswith("2433:")
    [req] = tc.requests
    assert req.method == "POST" and req.path == "/"
    assert req.headers["x-tc-action"] == "SendSms"
    assert req.headers["x-tc-version"] == "2021-01-11"
    assert req.headers["x-tc-region"] == "ap-guangzhou"
    assert req.headers["x-tc-timestamp"] == str(int(FIXED.timestamp()))
    assert req.headers["authorization"].startswith(
        f"TC3-HMAC-SHA256 Credential={tc.secret_id}/2024-05-20/sms/tc3_request, SignedHeaders=content-type;host, ")
    assert req.json() == {
        "PhoneNumberSet": ["+86" + PHONE], "SmsSdkAppId": tc.sdk_app_id, "SignName": "三长办",
        "TemplateId": "2041001", "TemplateParamSet": ["SS-2024-0031", "5月22日"],
        "SessionContext": "dlv-0001"}


def test_tencent_wrong_secret_is_permanent_signature_failure(tc):
    env = tc.env(templates=TC_TEMPLATES) | {"SANZHANG_TENCENT_SMS_SECRET_KEY": "wrong"}
    with pytest.raises(PermanentSendError) as info:
        build(TencentSmsChannel, env).send(message())
    assert info.value.code == "AuthFailure.SignatureFailure"


def test_tencent_skewed_clock_is_retryable(tc):
    tc.now = lambda: FIXED + timedelta(minutes=10)
    with pytest.raises(RetryableSendError) as info:
        build(TencentSmsChannel, tc.env(templates=TC_TEMPLATES)).send(message())
    assert info.value.code == "AuthFailure.SignatureExpire"


@pytest.mark.parametrize("code, retryable", [
    ("LimitExceeded.PhoneNumberDailyLimit", True), ("LimitExceeded.DeliveryFrequencyLimit", True),
    ("RequestLimitExceeded", True), ("InternalError.Timeout", True), ("InternalError", True),
    ("RequestTimeout", True),
    ("FailedOperation.PhoneNumberInBlacklist", False), ("InvalidParameterValue.IncorrectPhoneNumber", False),
    ("FailedOperation.TemplateIncorrectOrUnapproved", False),
    ("FailedOperation.SignatureIncorrectOrUnapproved", False), ("AuthFailure.SecretIdNotFound", False),
    ("InternalError.SigVerificationFail", False), ("UnsupportedOperation.Whatever", False),
])
def test_tencent_request_error_mapping(tc, code, retryable):
    tc.fail_next(code)
    with pytest.raises(SendError) as info:
        build(TencentSmsChannel, tc.env(templates=TC_TEMPLATES)).send(message())
    assert info.value.code == code
    assert isinstance(info.value, RetryableSendError if retryable else PermanentSendError)
    assert tc.problems == []


def test_tencent_per_number_status_errors(tc):
    channel = build(TencentSmsChannel, tc.env(templates=TC_TEMPLATES))
    with pytest.raises(PermanentSendError) as info:
        channel.send(message(phone="13900000000"))
    assert info.value.code == "FailedOperation.PhoneNumberInBlacklist"
    tc.fail_next("LimitExceeded.PhoneNumberThirtySecondLimit", per_number=True)
    with pytest.raises(RetryableSendError) as info:
        channel.send(message())
    assert info.value.code == "LimitExceeded.PhoneNumberThirtySecondLimit"


def test_tencent_template_params_must_match_approved_template(tc):
    templates = {"case.assigned": {"id": "2041001", "params": ["case_no"]}}
    with pytest.raises(PermanentSendError) as info:
        build(TencentSmsChannel, tc.env(templates=templates)).send(message())
    assert info.value.code == "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"
    with pytest.raises(PermanentSendError) as info:
        build(TencentSmsChannel, tc.env(templates=TC_TEMPLATES)).send(message(params={"case_no": "x"}))
    assert info.value.code == "missing_params"


def test_tencent_timeout_is_retryable(tc):
    tc.delay_next(1.0)
    with pytest.raises(RetryableSendError) as info:
        build(TencentSmsChannel, tc.env(templates=TC_TEMPLATES), timeout=0.2).send(message())
    assert info.value.code == "timeout"


# ================================================================ WeCom


@pytest.fixture
def wecom():
    with FakeWeCom(users={"zhangsan", "lisi"}) as fake:
        yield fake


def test_wecom_send_success_and_request_format(wecom):
    result = build(WeComChannel, wecom.env()).send(message())

    assert wecom.problems == []
    assert result == type(result)(provider_message_id="fake-msgid-1", status="sent")
    token_req, send_req = wecom.requests
    assert token_req.method == "GET" and token_req.path == "/cgi-bin/gettoken"
    assert token_req.query == {"corpid": wecom.corp_id, "corpsecret": wecom.corp_secret}
    assert send_req.method == "POST" and send_req.path == "/cgi-bin/message/send"
    assert send_req.query["access_token"].startswith("wecom-1-")
    assert send_req.json() == {"touser": "zhangsan", "msgtype": "text", "agentid": wecom.agent_id,
                               "text": {"content": message().text}, "safe": 0}


def test_wecom_token_is_cached_until_expiry_by_injected_clock(wecom):
    clock = Clock()
    channel = build(WeComChannel, wecom.env(), clock=clock)
    for i in range(3):
        channel.send(message(message_id=f"dlv-{i}"))
    assert wecom.token_calls == 1
    clock.advance(seconds=7200 - 300 - 1)
    channel.send(message())
    assert wecom.token_calls == 1
    clock.advance(seconds=2)          # inside the safety margin: refresh before WeCom expires it
    channel.send(message())
    assert wecom.token_calls == 2


@pytest.mark.parametrize("invalidate", ["expire_tokens", "revoke_tokens"])
def test_wecom_rejected_token_is_refreshed_exactly_once(wecom, invalidate):
    channel = build(WeComChannel, wecom.env())
    channel.send(message())
    getattr(wecom, invalidate)()      # 42001 expired / 40014 invalid
    result = channel.send(message(message_id="dlv-0002"))
    assert result.status == "sent"
    assert wecom.token_calls == 2
    assert len(wecom.calls("send")) == 3


def test_wecom_token_rejected_again_after_refresh_is_retryable(wecom):
    channel = build(WeComChannel, wecom.env())
    wecom.fail_next(42001, "access_token expired", times=2)
    with pytest.raises(RetryableSendError) as info:
        channel.send(message())
    assert info.value.code == "42001"
    assert wecom.token_calls == 2     # one fetch, one refresh, no loop


def test_wecom_wrong_secret_is_permanent(wecom):
    env = wecom.env() | {"SANZHANG_WECOM_CORP_SECRET": "wrong"}
    with pytest.raises(PermanentSendError) as info:
        build(WeComChannel, env).send(message())
    assert info.value.code == "40001"


@pytest.mark.parametrize("errcode, retryable", [(45009, True), (-1, True), (60020, False), (81013, False)])
def test_wecom_error_mapping(wecom, errcode, retryable):
    wecom.fail_next(errcode)
    with pytest.raises(SendError) as info:
        build(WeComChannel, wecom.env()).send(message())
    assert info.value.code == str(errcode)
    assert isinstance(info.value, RetryableSendError if retryable else PermanentSendError)


def test_wecom_unknown_user_is_permanent(wecom):
    with pytest.raises(PermanentSendError) as info:
        build(WeComChannel, wecom.env()).send(message(wecom_user="nobody"))
    assert info.value.code == "81013"


def test_wecom_ok_reply_listing_our_user_as_invalid_is_permanent(wecom):
    channel = build(WeComChannel, wecom.env())
    channel.tokens.get()
    wecom.reply_next_raw(200, {"errcode": 0, "errmsg": "ok", "invaliduser": "zhangsan", "msgid": "m1"})
    with pytest.raises(PermanentSendError) as info:
        channel.send(message())
    assert info.value.code == "invaliduser"


def test_wecom_timeout_is_retryable(wecom):
    channel = build(WeComChannel, wecom.env(), timeout=0.2)
    channel.tokens.get()
    wecom.delay_next(1.0)
    with pytest.raises(RetryableSendError) as info:
        channel.send(message())
    assert info.value.code == "timeout"


# ================================================================ WeChat Official Account

MP_TEMPLATES = {"case.assigned": {"template_id": "tmplCaseAssigned01",
                                  "data": {"character_string1": "case_no", "thing2": "title",
                                           "time3": "due"}}}


@pytest.fixture
def mp():
    with FakeWeChatMp(templates={"tmplCaseAssigned01": ["character_string1", "thing2", "time3"]},
                      subscribers={"oFAKEopenid0001"}) as fake:
        yield fake


def test_mp_send_success_and_request_format(mp):
    env = mp.env(templates=MP_TEMPLATES, page="https://sz.example.cn/cases/{case_no}")
    result = build(WeChatMpChannel, env).send(message())

    assert mp.problems == []
    assert result.status == "sent"
    token_req, send_req = mp.requests
    assert token_req.method == "GET" and token_req.path == "/cgi-bin/token"
    assert token_req.query == {"grant_type": "client_credential", "appid": mp.app_id, "secret": mp.app_secret}
    assert send_req.method == "POST" and send_req.path == "/cgi-bin/message/subscribe/bizsend"
    body = send_req.json()
    assert body["touser"] == "oFAKEopenid0001" and body["template_id"] == "tmplCaseAssigned01"
    assert body["page"] == "https://sz.example.cn/cases/SS-2024-0031"
    assert body["data"]["character_string1"] == {"value": "SS-2024-0031"}
    assert body["data"]["time3"] == {"value": "5月22日"}
    thing = body["data"]["thing2"]["value"]
    assert len(thing) == 20 and thing.endswith("…") and thing.startswith("韶山冲村3组路灯不亮")


def test_mp_token_cached_and_refreshed_exactly_once(mp):
    channel = build(WeChatMpChannel, mp.env(templates=MP_TEMPLATES))
    channel.send(message())
    channel.send(message(message_id="dlv-0002"))
    assert mp.token_calls == 1
    mp.revoke_tokens()                # 40001: another process fetched a newer token
    channel.send(message(message_id="dlv-0003"))
    assert mp.token_calls == 2
    mp.expire_tokens()                # 42001
    channel.send(message(message_id="dlv-0004"))
    assert mp.token_calls == 3
    assert len(mp.calls("send")) == 6


def test_mp_unsubscribed_user_is_permanent_and_busy_is_retryable(mp):
    channel = build(WeChatMpChannel, mp.env(templates=MP_TEMPLATES))
    with pytest.raises(PermanentSendError) as info:
        channel.send(message(openid="oSOMEONEelse"))
    assert info.value.code == "43101"
    mp.fail_next(45009, "reach max api daily quota limit")
    with pytest.raises(RetryableSendError) as info:
        channel.send(message())
    assert info.value.code == "45009"


def test_mp_wrong_secret_is_permanent(mp):
    env = mp.env(templates=MP_TEMPLATES) | {"SANZHANG_WECHAT_MP_APP_SECRET": "wrong"}
    with pytest.raises(PermanentSendError) as info:
        build(WeChatMpChannel, env).send(message())
    assert info.value.code == "40125"


def test_mp_can_reach_needs_openid_and_template(mp):
    channel = build(WeChatMpChannel, mp.env(templates=MP_TEMPLATES))
    assert channel.can_reach(message())
    assert not channel.can_reach(message(openid=None))
    assert not channel.can_reach(message(template="case.unknown"))


# ================================================================ console, assembly, hygiene


def test_logs_never_contain_phone_secret_or_token(ali, tc, wecom, mp, caplog):
    caplog.set_level(logging.DEBUG)
    build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES)).send(message())
    build(TencentSmsChannel, tc.env(templates=TC_TEMPLATES)).send(message())
    wc = build(WeComChannel, wecom.env())
    wc.send(message())
    mc = build(WeChatMpChannel, mp.env(templates=MP_TEMPLATES))
    mc.send(message())
    ali.fail_next("isv.MOBILE_NUMBER_ILLEGAL", f"非法手机号 {PHONE}")
    with pytest.raises(PermanentSendError) as info:
        build(AliyunSmsChannel, ali.env(templates=ALI_TEMPLATES)).send(message())
    secrets = [PHONE, ali.access_key_secret, tc.secret_key, wecom.corp_secret, mp.app_secret,
               wc.tokens.get(), mc.tokens.get()]
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in str(info.value)


def test_build_channels_from_environment(ali, tc, wecom, mp):
    env = (ali.env(templates=ALI_TEMPLATES) | tc.env(templates=TC_TEMPLATES) | wecom.env()
           | mp.env(templates=MP_TEMPLATES, page="https://sz.example.cn/"))
    channels = build_channels(env, Clock(), [].append, new_nonce=nonces(), opener=no_proxy_opener())
    assert sorted(channels) == ["aliyun_sms", "console", "tencent_sms", "wechat_mp", "wecom"]
    for name, channel in channels.items():
        assert isinstance(channel, Channel) and channel.name == name
        assert channel.send(message()).status in ("sent", "delivered")
    assert channels["tencent_sms"].settings.region == "ap-guangzhou"
    assert channels["wecom"].settings.agent_id == wecom.agent_id
    assert channels["wechat_mp"].settings.page == "https://sz.example.cn/"


