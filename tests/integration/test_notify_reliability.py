"""Never a lost or doubled message: redelivery, concurrent consumers, crashes, retries with backoff,
timeouts, fallback, quiet hours, the per-recipient rate limit and the township SMS budget —
on an injected clock, with scripted in-process channels."""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from shared.clock import iso
from tests.support.notify import (
    MONDAY_11PM, TOWNSHIP, Harness, Scripted, case_payload, event,
)


def routes(**kinds) -> dict:
    return {"SANZHANG_NOTIFY_ROUTES": json.dumps({"default": kinds})}


def assigned(n: int, unit: str = "u-nb1", **over) -> dict:
    return event("case.assigned", case_payload(unit, case_id=f"{n:032d}", tracking_no=f"TRK{n:05d}", **over))


# ---------------------------------------------------------------- at most once


def test_a_redelivered_event_sends_nothing_more(tmp_path):
    wecom = Scripted("wecom", "wecom")
    h = Harness(tmp_path, routes(lead=["wecom"]), scripted=[wecom])
    ev = assigned(1)
    for _ in range(5):
        h.handle(ev)
    assert len(wecom.sent) == 1 and len(h.deliveries()) == 1


def test_concurrent_redeliveries_send_once(tmp_path):
    wecom = Scripted("wecom", "wecom", delay=0.05)
    h = Harness(tmp_path, routes(lead=["wecom"]), scripted=[wecom])
    ev = assigned(1)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: h.handle(ev), range(8)))
    assert len(wecom.sent) == 1
    [d] = h.deliveries()
    assert d["status"] == "sent"


def test_a_redelivery_after_a_fallback_adds_nothing(tmp_path):
    wecom, sms = Scripted("wecom", "wecom"), Scripted("aliyun_sms", "phone")
    wecom.script = ["fail"]
    h = Harness(tmp_path, routes(lead=["wecom", "aliyun_sms"]), scripted=[wecom, sms])
    ev = assigned(1)
    h.handle(ev)
    h.handle(ev)
    assert (len(wecom.sent), len(sms.sent)) == (1, 1)
    assert [(d["channel"], d["status"], d["seq"]) for d in h.deliveries()] == [("wecom", "failed", 0),
                                                                              ("aliyun_sms", "sent", 1)]


def test_a_redelivery_finishes_a_notice_whose_worker_died_before_sending(tmp_path, monkeypatch):
    wecom = Scripted("wecom", "wecom")
    h = Harness(tmp_path, routes(lead=["wecom"]), scripted=[wecom])
    ev = assigned(1)
    real = h.service._process
    monkeypatch.setattr(h.service, "_process", lambda doc: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError):
        h.handle(ev)  # the slot was claimed, then the process "died"
    monkeypatch.setattr(h.service, "_process", real)
    h.handle(ev)  # the broker redelivers: the claimed but unsent notice goes out, once
    h.handle(ev)
    assert len(wecom.sent) == 1 and h.one()["status"] == "sent"


class Crash(BaseException):
    """Stands in for the process dying inside the provider call."""


def test_a_send_interrupted_by_a_crash_is_unknown_and_not_resent(tmp_path):
    wecom = Scripted("wecom", "wecom")
    wecom.script = [Crash()]
    h = Harness(tmp_path, routes(lead=["wecom"]), scripted=[wecom])
    with pytest.raises(Crash):
        h.handle(assigned(1))
    assert h.one()["status"] == "sending"
    h.clock.advance(seconds=59)
    assert h.sweep() == 0
    h.clock.advance(seconds=2)
    assert h.sweep() == 1
    d = h.one()
    assert (d["status"], d["error"], d["due_at"]) == ("unknown", "interrupted", None)
    h.clock.advance(hours=1)
    h.sweep()
    assert len(wecom.sent) == 1


def test_an_interrupted_console_send_is_simply_sent_again(tmp_path, monkeypatch):
    h = Harness(tmp_path)
    console = h.channels["console"]
    calls = []

    def crash_once(msg):
        calls.append(msg)
        if len(calls) == 1:
            raise Crash()
        return type(console).send(console, msg)

    monkeypatch.setattr(console, "send", crash_once)
    with pytest.raises(Crash):
        h.handle(assigned(1))
    h.clock.advance(seconds=61)
    h.sweep()
    assert h.one()["status"] == "delivered" and len(calls) == 2


# ---------------------------------------------------------------- retries, timeouts, fallback


def test_retry_backoff_doubles_then_the_next_channel_takes_over(tmp_path):
    wecom, sms = Scripted("wecom", "wecom"), Scripted("aliyun_sms", "phone")
    wecom.script = ["retry"] * 4
    h = Harness(tmp_path, {**routes(lead=["wecom", "aliyun_sms"]), "SANZHANG_NOTIFY_MAX_ATTEMPTS": "4"},
                scripted=[wecom, sms])
    h.handle(assigned(1))
    start = h.clock.now()
    for attempt, wait in ((1, 30), (2, 60), (3, 120)):
        d = h.one(channel="wecom")
        assert (d["status"], d["attempts"]) == ("retrying", attempt)
        assert d["next_attempt_at"] == d["due_at"] == iso(h.clock.now() + timedelta(seconds=wait))
        h.clock.advance(seconds=wait - 1)
        assert h.sweep() == 0, "not before its time"
        h.clock.advance(seconds=1)
        assert h.sweep() == 1
    assert h.clock.now() - start == timedelta(seconds=210)
    d = h.one(channel="wecom")
    assert (d["status"], d["attempts"], d["error"]) == ("failed", 4, "Throttling.User")
    assert len(wecom.sent) == 4
    assert h.one(channel="aliyun_sms")["status"] == "sent" and len(sms.sent) == 1


def test_a_timeout_is_neither_retried_nor_passed_to_another_channel(tmp_path):
    wecom, sms = Scripted("wecom", "wecom"), Scripted("aliyun_sms", "phone")
    wecom.script = ["timeout"]
    h = Harness(tmp_path, routes(lead=["wecom", "aliyun_sms"]), scripted=[wecom, sms])
    h.handle(assigned(1))
    h.clock.advance(hours=2)
    h.sweep()
    [d] = h.deliveries()
    assert (d["status"], d["error"]) == ("unknown", "timeout") and len(wecom.sent) == 1 and sms.sent == []


# ---------------------------------------------------------------- quiet hours


@pytest.fixture
def night(tmp_path):
    wecom = Scripted("wecom", "wecom", "phone")
    h = Harness(tmp_path, routes(lead=["wecom"], resident=["wecom"], staff=["wecom"]), scripted=[wecom],
                start=MONDAY_11PM)
    return h, wecom


def test_quiet_hours_hold_a_leads_message_until_seven(night):
    h, wecom = night
    h.handle(assigned(1))
    d = h.one()
    assert (d["status"], d["hold_reason"]) == ("queued", "quiet_hours")
    assert d["due_at"] == "2026-11-02T23:00:00.000000Z"  # 07:00 on Tuesday in Shanghai
    assert wecom.sent == []
    h.clock.set(MONDAY_11PM + timedelta(hours=7, minutes=59))
    assert h.sweep() == 0
    h.clock.advance(minutes=1)
    assert h.sweep() == 1
    assert h.one()["status"] == "sent" and len(wecom.sent) == 1


def test_quiet_hours_after_midnight_end_the_same_morning(night):
    h, wecom = night
    h.clock.set(MONDAY_11PM + timedelta(hours=4))  # 03:00 Tuesday
    h.handle(assigned(1))
    assert h.one()["due_at"] == "2026-11-02T23:00:00.000000Z"


@pytest.mark.parametrize("over", [{"urgent": True}, {"category": "hazard"}])
def test_urgent_messages_go_at_once(night, over):
    h, wecom = night
    h.handle(assigned(1, **over))
    assert h.one()["status"] == "sent" and len(wecom.sent) == 1


def test_quiet_hours_hold_residents_but_not_the_townships_staff(night):
    h, wecom = night
    h.report()
    h.handle(event("case.accepted", case_payload(), at=MONDAY_11PM))
    assert h.one(recipient_kind="resident")["hold_reason"] == "quiet_hours"
    h.handle(event("sla.breached", case_payload("u-nb1", reason="超时未接单"), at=MONDAY_11PM))
    assert h.one(recipient_role="township")["status"] == "sent"
    assert h.one(recipient_role="previous")["hold_reason"] == "quiet_hours"


def test_the_console_reaches_no_one_and_keeps_no_quiet_hours(tmp_path):
    h = Harness(tmp_path, start=MONDAY_11PM)
    h.handle(assigned(1))
    assert h.one()["status"] == "delivered"


@pytest.mark.parametrize("setting,held", [("off", False), ("12:00-14:00", False), ("22:30-06:00", True)])
def test_quiet_hours_are_configurable(tmp_path, setting, held):
    wecom = Scripted("wecom", "wecom")
    h = Harness(tmp_path, {**routes(lead=["wecom"]), "SANZHANG_NOTIFY_QUIET_HOURS": setting}, scripted=[wecom],
                start=MONDAY_11PM)
    h.handle(assigned(1))
    assert (h.one()["hold_reason"] == "quiet_hours") is held


# ---------------------------------------------------------------- rate limit


def test_a_storm_of_events_becomes_three_messages_and_one_digest(tmp_path):
    wecom = Scripted("wecom", "wecom")
    h = Harness(tmp_path, {**routes(lead=["wecom"]), "SANZHANG_NOTIFY_RATE_LIMIT": "3/600"}, scripted=[wecom])
    for n in range(8):
        h.handle(assigned(n))
        h.clock.advance(seconds=10)
    h.handle(assigned(100, "u-nb2"))  # someone else is not limited by 周桂香's storm
    statuses = [d["status"] for d in h.deliveries(recipient_id="u-nb1")]
    assert statuses == ["sent"] * 3 + ["queued"] + ["merged"] * 4
    carrier = h.deliveries(recipient_id="u-nb1")[3]
    assert carrier["hold_reason"] == "rate_limit" and carrier["due_at"] == "2026-11-02T01:10:00.000000Z"
    assert all(d["merged_into"] == carrier["_id"] for d in h.deliveries(status="merged"))
    assert len(wecom.sent) == 4 and h.one(recipient_id="u-nb2")["status"] == "sent"

    h.clock.set(h.clock.now().replace(minute=10, second=0))
    assert h.sweep() == 1
    digest = h.one(_id=carrier["_id"])
    assert digest["status"] == "sent" and digest["template_key"] == "notify.digest:recipient"
    assert "您有5条新通知" in digest["text"] and "TRK00003" in digest["text"]
    assert digest["segments"] == 1 and "等" in digest["text"]  # five numbers do not fit: the first few, then 等
    assert wecom.sent[-1].text == digest["text"] and len(wecom.sent) == 5
    assert digest["original_text"] == carrier["text"]


def test_urgent_messages_pass_the_rate_limit(tmp_path):
    wecom = Scripted("wecom", "wecom")
    h = Harness(tmp_path, {**routes(lead=["wecom"]), "SANZHANG_NOTIFY_RATE_LIMIT": "1/600"}, scripted=[wecom])
    h.handle(assigned(1))
    h.handle(assigned(2, category="hazard"))
    assert [d["status"] for d in h.deliveries()] == ["sent", "sent"]


def test_a_new_window_sends_again(tmp_path):
    wecom = Scripted("wecom", "wecom")
    h = Harness(tmp_path, {**routes(lead=["wecom"]), "SANZHANG_NOTIFY_RATE_LIMIT": "2/600"}, scripted=[wecom])
    for n in range(3):
        h.handle(assigned(n))
    h.clock.advance(minutes=10)
    h.sweep()  # the single held message goes out as itself (nothing merged into it)
    h.handle(assigned(9))
    assert [d["status"] for d in h.deliveries()] == ["sent", "sent", "sent", "sent"]
    assert h.deliveries()[2]["template_key"] == "case.assigned:assignee"


# ---------------------------------------------------------------- SMS budget


def test_the_sms_budget_sends_the_rest_by_the_next_channel(tmp_path):
    sms = Scripted("aliyun_sms", "phone")
    h = Harness(tmp_path, {**routes(lead=["aliyun_sms", "console"]), "SANZHANG_NOTIFY_SMS_BUDGET": "2"},
                scripted=[sms])
    for n, unit in enumerate(("u-nb1", "u-nb2", "u-grp1")):
        h.handle(assigned(n, unit))
    assert len(sms.sent) == 2
    skipped = h.one(recipient_id="u-grp1", channel="aliyun_sms")
    assert (skipped["status"], skipped["error"]) == ("skipped", "sms_budget")
    assert h.one(recipient_id="u-grp1", channel="console")["status"] == "delivered"
    other = event("case.assigned", case_payload("u-nb1", case_id="9" * 32), township="430382101")
    h.handle(other)  # another township has a budget of its own
    assert len(sms.sent) == 3


def test_without_another_channel_the_budget_holds_until_the_next_hour(tmp_path):
    sms = Scripted("aliyun_sms", "phone")
    h = Harness(tmp_path, {**routes(lead=["aliyun_sms"]),
                           "SANZHANG_NOTIFY_SMS_BUDGET": json.dumps({"default": 0, TOWNSHIP: 1})}, scripted=[sms])
    h.handle(assigned(1, "u-nb1"))
    h.handle(assigned(2, "u-nb2"))
    held = h.one(recipient_id="u-nb2")
    assert (held["status"], held["hold_reason"], held["due_at"]) == ("queued", "sms_budget",
                                                                    "2026-11-02T02:00:00.000000Z")
    h.clock.advance(minutes=59)
    assert h.sweep() == 0
    h.clock.advance(minutes=1)
    h.sweep()
    assert h.one(recipient_id="u-nb2")["status"] == "sent" and len(sms.sent) == 2


def test_a_refused_sms_gives_its_budget_back(tmp_path):
    sms = Scripted("aliyun_sms", "phone")
    sms.script = ["fail"]
    h = Harness(tmp_path, {**routes(lead=["aliyun_sms", "console"]), "SANZHANG_NOTIFY_SMS_BUDGET": "1"},
                scripted=[sms])
    h.handle(assigned(1, "u-nb1"))
    h.handle(assigned(2, "u-nb2"))
    assert h.one(recipient_id="u-nb2", channel="aliyun_sms")["status"] == "sent"


def test_the_budget_counts_segments(tmp_path):
    sms = Scripted("aliyun_sms", "phone")
    h = Harness(tmp_path, {**routes(lead=["aliyun_sms", "console"]), "SANZHANG_NOTIFY_SMS_BUDGET": "3"},
                scripted=[sms])
    h.service.set_templates(TOWNSHIP, {"case.assigned:assignee": "{name}您好，" + "请尽快接单。" * 12}, "test")
    h.handle(assigned(1, "u-nb1"))
    first = h.one(recipient_id="u-nb1")
    assert first["segments"] == 2 and first["length"] > 70
    h.handle(assigned(2, "u-nb2"))
    assert h.one(recipient_id="u-nb2", channel="aliyun_sms")["error"] == "sms_budget"


# ---------------------------------------------------------------- under threads, all together


def test_many_events_on_many_threads_each_notice_once(tmp_path):
    wecom, sms = Scripted("wecom", "wecom", delay=0.002), Scripted("aliyun_sms", "phone")
    wecom.script = ["fail", "retry"] * 10
    h = Harness(tmp_path, {**routes(lead=["wecom", "aliyun_sms"]), "SANZHANG_NOTIFY_RATE_LIMIT": "off"},
                scripted=[wecom, sms])
    events = [assigned(n, unit) for n in range(30) for unit in ("u-nb1", "u-nb2")]
    stop = threading.Event()

    def sweeper():
        while not stop.is_set():
            h.sweep()

    t = threading.Thread(target=sweeper)
    t.start()
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(h.handle, events + events))
    h.clock.advance(minutes=5)
    stop.set()
    t.join()
    h.sweep()
    notices = {}
    for d in h.deliveries():
        notices.setdefault(d["notice_id"], []).append(d)
    assert len(notices) == 60
    for docs in notices.values():
        done = [d for d in docs if d["status"] == "sent"]
        assert len(done) == 1, [(d["channel"], d["status"]) for d in docs]
    # 20 scripted outcomes: 10 refusals went on by SMS, 10 throttlings were retried on WeCom.
    assert (len(wecom.sent), len(sms.sent)) == (70, 10)
