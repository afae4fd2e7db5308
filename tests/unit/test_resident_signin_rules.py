"""A resident's sign-in rules with the fake clock and the in-memory store: the same code rules as the
leads' (one home, shared/signin_challenges.py), a challenge bound to its township, the phone kept
sealed and found by its keyed hash, sessions that end at once, and notify's wording for a resident."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from services.intake.resident_sessions import ResidentSessions
from services.intake.resident_signin import ResidentSignIn
from services.notify.channels import ConsoleChannel
from services.notify.service import NotifyService
from services.notify.signin_codes import ConsoleCodes
from shared import personal
from shared.clock import FakeClock
from shared.domain.signin_codes import MASK, code_for, phone_key
from shared.events import load_event
from shared.signin_challenges import Refused
from tests.support.fakes.memory_store import MemoryStore

SECRET = "unit-secret-0123456789abcdef"
T, OTHER = "430382100", "430382101"
PHONE = "13973200001"


@pytest.fixture
def parts():
    clock = FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc))
    store = MemoryStore()
    sessions = ResidentSessions(store, clock, SECRET, 12)
    signin = ResidentSignIn(store, clock, lambda: None, secret=SECRET, previous_secret=None, sessions=sessions,
                            address_limit=3)
    return clock, signin, sessions


def test_any_phone_gets_a_code_and_the_event_says_it_is_a_residents(parts):
    _, signin, _ = parts
    personal.configure(SECRET)
    out = signin.request_code(T, PHONE, "a")
    doc = signin.rules.repo.get(out["challenge_id"])
    [event] = doc["outbox"]
    text = json.dumps(doc, ensure_ascii=False)
    assert PHONE not in text and code_for(SECRET, out["challenge_id"]) not in text   # sealed, never stored
    payload = load_event(event)["payload"]
    assert payload["audience"] == "resident" and payload["phone"] == PHONE and doc["township"] == T
    assert doc["phone_key"] == phone_key(SECRET, PHONE)


def test_the_leads_limits_apply_to_residents(parts):
    clock, signin, _ = parts
    signin.request_code(T, PHONE, "a1")
    with pytest.raises(Refused) as too_soon:
        signin.request_code(T, PHONE, "a2")
    assert too_soon.value.status == 429
    for n in range(4):
        clock.advance(seconds=61)
        signin.request_code(T, PHONE, f"b{n}")
    clock.advance(seconds=61)
    with pytest.raises(Refused, match="一小时"):
        signin.request_code(T, PHONE, "c")
    with pytest.raises(Refused, match="本网络"):
        [signin.request_code(T, f"1390000000{n}", "same") for n in range(4)]


def test_a_code_works_once_in_its_own_township_and_five_wrong_tries_end_it(parts):
    clock, signin, sessions = parts
    challenge = signin.request_code(T, PHONE, "a")["challenge_id"]
    code = code_for(SECRET, challenge)
    with pytest.raises(Refused):
        signin.verify(OTHER, challenge, code)          # another township's page: no such challenge
    token, session = signin.verify(T, challenge, code)  # …and that cost no try
    assert token.startswith("szres1.") and session["township"] == T and PHONE not in token
    assert signin.phone_of(session) == PHONE and session["phone_sealed"] != PHONE
    with pytest.raises(Refused, match="已使用"):
        signin.verify(T, challenge, code)
    clock.advance(seconds=61)
    challenge = signin.request_code(T, PHONE, "a")["challenge_id"]
    wrong = "999999" if code_for(SECRET, challenge) != "999999" else "888888"
    for _ in range(5):
        with pytest.raises(Refused):
            signin.verify(T, challenge, wrong)
    with pytest.raises(Refused, match="已作废"):
        signin.verify(T, challenge, code_for(SECRET, challenge))
    clock.advance(seconds=61)
    challenge = signin.request_code(T, PHONE, "a")["challenge_id"]
    clock.advance(seconds=301)
    with pytest.raises(Refused, match="过期"):
        signin.verify(T, challenge, code_for(SECRET, challenge))


def test_sessions_resolve_end_and_expire(parts):
    clock, signin, sessions = parts
    challenge = signin.request_code(T, PHONE, "a")["challenge_id"]
    token, session = signin.verify(T, challenge, code_for(SECRET, challenge))
    other, _ = sessions.open(T, session["phone_key"], session["phone_sealed"])
    assert sessions.resolve(token)["_id"] == session["_id"] and other != token   # a new id each time
    assert sessions.resolve(token[:-2] + "xx") is None and sessions.resolve("sz2.abc") is None
    assert sessions.csrf_ok(session["_id"], sessions.csrf(session["_id"]))
    assert not sessions.csrf_ok(session["_id"], "") and not sessions.csrf_ok(session["_id"], sessions.csrf("x"))
    assert sessions.revoke(session["_id"], "signed_out") and sessions.resolve(token) is None
    assert sessions.resolve(other) is not None
    clock.advance(hours=13)
    assert sessions.resolve(other) is None
    assert sessions.revoke_phone(session["phone_key"], "everywhere") == 1


def test_notify_words_a_residents_code_and_keeps_it_out_of_what_it_stores():
    clock = FakeClock(datetime(2026, 11, 2, 14, 30, tzinfo=timezone.utc))   # quiet hours: a code is urgent
    console = ConsoleCodes(ConsoleChannel(now=clock.now))
    sent = []
    console.terminal = sent.append
    service = NotifyService(MemoryStore(), {"console": console}, clock, secret=SECRET)
    service.on_signin_code({"id": "f" * 32, "type": "signin.code_requested", "township": T,
                            "occurred_at": "2026-11-02T14:30:00Z", "version": 1, "correlation_id": None,
                            "payload": {"challenge_id": "ch-9", "recipient_id": "resident:1", "name": None,
                                        "phone": PHONE, "wecom_id": None, "expires_at": "x", "urgent": True,
                                        "audience": "resident"}})
    code = code_for(SECRET, "ch-9")
    [stored] = service.deliveries.find({})
    assert stored["template_key"] == "signin.code_requested:resident" and stored["status"] == "delivered"
    assert MASK in stored["text"] and code not in json.dumps(stored, ensure_ascii=False)
    assert "您正在登录群众服务" in sent[0].text and code in sent[0].text and "None" not in sent[0].text
