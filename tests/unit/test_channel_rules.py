"""The channel adapters' pure parts: request signatures against the providers' documented examples, percent-
encoding, value fitting, configuration from the environment, the console sink and token-cache lifetimes."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from datetime import timedelta

import pytest

from services.notify.channels import AliyunSmsChannel, ConsoleChannel, TencentSmsChannel, WeComChannel, build_channels
from services.notify.channels import OutboundMessage
from services.notify.channels import aliyun_sms, tencent_sms
from services.notify.channels.base import AccessTokenCache, scrub
from shared.domain import phones
from services.notify.channels.wechat_mp import fit_value
from tests.support.fakes.providers import aliyun_expected_signature, tc3_expected_signature


FIXED = datetime(2024, 5, 20, 1, 2, 3, tzinfo=timezone.utc)
PHONE = "13812345678"
DOC_BODY = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
DOC_SIGNATURE = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


class Clock:
    def __init__(self, start: datetime = FIXED):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw):
        self.now += timedelta(**kw)


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


def test_aliyun_signature_matches_sms_documentation_example():
    # The worked example in Alibaba's SMS "request signature" documentation (GET).
    params = {
        "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
        "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}', "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert aliyun_sms.sign(params, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert aliyun_expected_signature("GET", params, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_aliyun_signature_matches_rpc_documentation_example():
    # The DescribeRegions example of Alibaba's generic RPC signature documentation.
    params = {"AccessKeyId": "testid", "Action": "DescribeRegions", "Format": "XML",
              "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
              "SignatureVersion": "1.0", "Timestamp": "2016-02-23T12:46:24Z", "Version": "2014-05-26"}
    assert aliyun_sms.sign(params, "testsecret", "GET") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_aliyun_percent_encoding_rules():
    assert aliyun_sms.percent_encode("a b*c~d") == "a%20b%2Ac~d"
    assert aliyun_sms.percent_encode("2024-05-20T01:02:03Z") == "2024-05-20T01%3A02%3A03Z"
    assert aliyun_sms.percent_encode("+/=&") == "%2B%2F%3D%26"
    assert aliyun_sms.percent_encode("三") == "%E4%B8%89"


def test_tc3_signature_matches_documentation_example():
    # Tencent Cloud "Signature v3" worked example (CVM DescribeInstances, POST JSON).
    sig = tencent_sms.tc3_signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", service="cvm",
                                    host="cvm.tencentcloudapi.com", timestamp=1551113065,
                                    payload=DOC_BODY, content_type="application/json; charset=utf-8")
    assert sig == DOC_SIGNATURE
    auth = tencent_sms.authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
                                     service="cvm", host="cvm.tencentcloudapi.com", timestamp=1551113065,
                                     payload=DOC_BODY)
    assert auth == ("TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
                    f"tc3_request, SignedHeaders=content-type;host, Signature={DOC_SIGNATURE}")


def test_tc3_fake_verifier_agrees_with_documentation_example():
    headers = {"content-type": "application/json; charset=utf-8", "host": "cvm.tencentcloudapi.com"}
    assert tc3_expected_signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", method="POST",
                                  signed_headers=["content-type", "host"], headers=headers,
                                  payload=DOC_BODY, query="", timestamp="1551113065",
                                  date="2019-02-25", service="cvm") == DOC_SIGNATURE


def test_mp_fit_value_rules():
    assert fit_value("thing1", "一" * 25) == "一" * 19 + "…"
    assert fit_value("thing12", "第一行\n第二行") == "第一行 第二行"
    assert fit_value("thing1", "") == "-"
    assert len(fit_value("phrase3", "处理中请稍候")) == 5
    assert fit_value("character_string1", "X" * 40) == "X" * 40   # data, not prose: never cut
    assert fit_value("time2", "2024年5月22日 18:00") == "2024年5月22日 18:00"


def test_console_appends_to_sink_and_masks_phone(caplog):
    sink = []
    caplog.set_level(logging.INFO)
    result = ConsoleChannel(sink.append, now=Clock()).send(message())
    assert result.status == "delivered" and result.provider_message_id == "console-dlv-0001"
    [entry] = sink
    assert entry["phone"] == "138****5678" and entry["message_id"] == "dlv-0001"
    assert entry["text"] == message().text and entry["at"] == FIXED.isoformat()
    assert "138****5678" in caplog.text and PHONE not in caplog.text


def test_build_channels_console_only_without_configuration():
    channels = build_channels({}, Clock(), [].append)
    assert list(channels) == ["console"]


def test_from_env_defaults_and_secret_free_repr():
    env = {"SANZHANG_ALIYUN_SMS_ACCESS_KEY_ID": "id", "SANZHANG_ALIYUN_SMS_ACCESS_KEY_SECRET": "s3cr3t",
           "SANZHANG_ALIYUN_SMS_SIGN_NAME": "三长办",
           "SANZHANG_TENCENT_SMS_SECRET_ID": "id", "SANZHANG_TENCENT_SMS_SECRET_KEY": "s3cr3t",
           "SANZHANG_TENCENT_SMS_SDK_APP_ID": "1400000000", "SANZHANG_TENCENT_SMS_SIGN_NAME": "三长办",
           "SANZHANG_WECOM_CORP_ID": "ww1", "SANZHANG_WECOM_CORP_SECRET": "s3cr3t",
           "SANZHANG_WECOM_AGENT_ID": "1000002",
           "SANZHANG_WECHAT_MP_APP_ID": "wx1", "SANZHANG_WECHAT_MP_APP_SECRET": "s3cr3t"}
    channels = build_channels(env, Clock(), None)
    assert channels["aliyun_sms"].settings.endpoint == "https://dysmsapi.aliyuncs.com/"
    assert channels["tencent_sms"].settings.endpoint == "https://sms.tencentcloudapi.com"
    assert channels["tencent_sms"].settings.region == "ap-guangzhou"
    assert channels["wecom"].settings.endpoint == "https://qyapi.weixin.qq.com"
    assert channels["wechat_mp"].settings.endpoint == "https://api.weixin.qq.com"
    for name in ("aliyun_sms", "tencent_sms", "wecom", "wechat_mp"):
        assert "s3cr3t" not in repr(channels[name].settings)
def test_from_env_rejects_half_configuration_without_echoing_values():
    with pytest.raises(ValueError) as info:
        WeComChannel.from_env({"SANZHANG_WECOM_CORP_ID": "ww1", "SANZHANG_WECOM_CORP_SECRET": "s3cr3t"})
    assert "SANZHANG_WECOM_AGENT_ID" in str(info.value) and "s3cr3t" not in str(info.value)
    with pytest.raises(ValueError):
        AliyunSmsChannel.from_env({"SANZHANG_ALIYUN_SMS_ACCESS_KEY_ID": "id",
                                   "SANZHANG_ALIYUN_SMS_ACCESS_KEY_SECRET": "s",
                                   "SANZHANG_ALIYUN_SMS_SIGN_NAME": "n",
                                   "SANZHANG_ALIYUN_SMS_TEMPLATES": "{not json"})
    assert TencentSmsChannel.from_env({}) is None
def test_phone_helpers():
    assert phones.mobile("+8613812345678") == PHONE
    assert phones.mobile("0086 138 1234 5678") == PHONE
    assert phones.mobile("12812345678") is None
    assert phones.mask("+86 138-1234-5678") == "138****5678"
    assert scrub(f"PhoneNumbers%3D{PHONE}%26 and 86{PHONE} access_token=abc&x=1") == (
        "PhoneNumbers%3D138****5678%26 and 138****5678 access_token=***&x=1")
def test_token_cache_uses_half_lifetime_when_margin_exceeds_it():
    clock, calls = Clock(), []
    cache = AccessTokenCache(lambda: (calls.append(1) or f"t{len(calls)}", 100), clock, margin_seconds=300)
    assert cache.get() == "t1"
    clock.advance(seconds=49)
    assert cache.get() == "t1"
    clock.advance(seconds=1)
    assert cache.get() == "t2"
    cache.invalidate("t1")            # stale: another thread already refreshed
    assert cache.get() == "t2"