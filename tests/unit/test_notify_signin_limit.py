"""One phone number gets at most PER_HOUR sign-in codes a clock hour from all services together:
intake (a resident) and dispatch (a lead) each count only their own challenges, notify holds the
one count (services/notify/signin_codes.py). Over it: recorded as skipped, not sent, no fallback."""
from __future__ import annotations

from shared.domain.signin_codes import PER_HOUR
from tests.support.fakes.memory_store import MemoryStore
from tests.support.notify import Harness, Scripted, event
from tests.support.runtime import SECRET

PHONE = "13912345678"


def code_event(n: int, audience: str, phone: str = PHONE) -> dict:
    return event("signin.code_requested", {
        "challenge_id": f"ch-{audience}-{n}", "recipient_id": f"{audience}:{phone[-4:]}", "name": "张三",
        "phone": phone, "wecom_id": None, "expires_at": "2026-11-02T01:05:00.000000Z", "audience": audience})


def harness(tmp_path) -> tuple[Harness, Scripted]:
    sms = Scripted("aliyun_sms", "phone")
    h = Harness(tmp_path, {"SANZHANG_NOTIFY_ROUTES": '{"default": {"signin": ["aliyun_sms", "console"]}}'},
                scripted=[sms], store=MemoryStore())
    h.service.secret = SECRET
    return h, sms


def test_codes_asked_at_two_services_share_one_hourly_count_per_number(tmp_path):
    h, sms = harness(tmp_path)
    for n in range(3):
        h.handle(code_event(n, "resident"))   # intake's resident sign-in
    for n in range(3):
        h.handle(code_event(n, "person"))     # dispatch's lead sign-in, the same number
    assert len(sms.sent) == PER_HOUR and all(m.phone == PHONE for m in sms.sent)
    refused = h.one(status="skipped")
    assert refused["error"] == "signin_phone_limit" and refused["channel"] == "aliyun_sms"
    assert "本小时" in refused["error_detail"] and PHONE not in refused["error_detail"]
    assert not h.deliveries(channel="console")  # the number is limited, not the channel: no fallback
    # Another number is not affected; a redelivered event is not counted again.
    h.handle(code_event(9, "person", phone="13800000007"))
    h.handle(code_event(0, "resident"))
    assert len(sms.sent) == PER_HOUR + 1
    # The next clock hour, the number may have codes again.
    h.clock.advance(hours=1)
    h.handle(code_event(10, "resident"))
    assert len(sms.sent) == PER_HOUR + 2 and sms.sent[-1].phone == PHONE


def test_without_a_secret_nothing_is_counted(tmp_path):
    h, sms = harness(tmp_path)
    h.service.secret = None
    for n in range(PER_HOUR + 2):
        h.handle(code_event(n, "resident"))
    assert len(sms.sent) == PER_HOUR + 2
