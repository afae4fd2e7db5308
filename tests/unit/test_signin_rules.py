"""Sign-in's rules with the fake clock and the in-memory store: the derived code, its limits, its
expiry and tries, what the event carries, sessions and their revocation, and notify keeping the
code out of what it stores."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from services.dispatch.accounts import Accounts
from services.dispatch.lead_directory import LeadDirectory
from services.dispatch.sessions import Sessions
from services.dispatch.signin import Refused, SignIn
from services.notify.channels import ConsoleChannel
from services.notify.service import NotifyService
from services.notify.signin_codes import ConsoleCodes
from shared import personal
from shared.auth import Principal, TokenIssuer
from shared.clock import FakeClock
from shared.domain.signin_codes import MASK, code_for, matches, phone_key
from shared.events import load_event
from tests.support.fakes.memory_store import MemoryStore

SECRET = "unit-secret-0123456789abcdef"
T = "430382100"
LEAD = "13873100003"


class Org:
    def __init__(self):
        self.units = {"u-1": {"_id": "u-1", "township": T, "level": "neighbourhood", "name": "第1邻",
                              "lead": {"name": "周桂香", "phone": LEAD, "wecom_id": "ZhouGX"}}}

    def tree(self, township):
        return [u for u in self.units.values() if u["township"] == township]

    def unit(self, unit_id):
        return self.units.get(unit_id)


@pytest.fixture
def parts():
    clock = FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc))
    store, org = MemoryStore(), Org()
    directory = LeadDirectory(store, org, SECRET)
    directory.rebuild(T)
    sessions = Sessions(store, clock, lambda: None, TokenIssuer(SECRET), SECRET, org, 12)
    signin = SignIn(store, clock, lambda: None, secret=SECRET, accounts=Accounts(store, clock, SECRET),
                    directory=directory, sessions=sessions, address_limit=3)
    return clock, org, signin, sessions


def test_the_code_is_six_digits_derived_from_the_challenge():
    codes = {code_for(SECRET, f"challenge-{n}") for n in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 190
    assert code_for(SECRET, "c1") == code_for(SECRET, "c1") != code_for("another-secret-0123456789", "c1")
    assert matches(SECRET, "c1", code_for(SECRET, "c1")) and not matches(SECRET, "c2", code_for(SECRET, "c1"))


def test_one_code_a_minute_five_an_hour_per_phone(parts):
    clock, _, signin, _ = parts
    signin.request_code(LEAD, "a1")
    with pytest.raises(Refused) as too_soon:
        signin.request_code(LEAD, "a2")
    assert too_soon.value.status == 429 and 0 < too_soon.value.retry_after <= 60
    for n in range(4):
        clock.advance(seconds=61)
        signin.request_code(LEAD, f"b{n}")
    clock.advance(seconds=61)
    with pytest.raises(Refused) as hour:
        signin.request_code(LEAD, "c")
    assert "一小时" in hour.value.message
    clock.advance(minutes=56)
    signin.request_code(LEAD, "d")


def test_a_client_address_is_capped(parts):
    _, _, signin, _ = parts
    for n in range(3):
        signin.request_code(f"1390000000{n}", "same")
    with pytest.raises(Refused, match="本网络"):
        signin.request_code("13900000009", "same")


def test_the_event_names_the_challenge_never_the_code(parts):
    _, _, signin, _ = parts
    personal.configure(SECRET)   # what the runtime does: phones travel sealed
    out = signin.request_code(LEAD, "a")
    doc = signin.challenges.get(out["challenge_id"])
    [event] = doc["outbox"]
    assert event["type"] == "signin.code_requested"
    text = json.dumps(event, ensure_ascii=False)
    assert code_for(SECRET, out["challenge_id"]) not in text and LEAD not in text   # the phone is sealed
    assert load_event(event)["payload"]["challenge_id"] == out["challenge_id"]
    unknown = signin.challenges.get(signin.request_code("13912345678", "a")["challenge_id"])
    assert unknown["outbox"] == []   # the same answer, and no message


def test_expiry_tries_and_replay(parts):
    clock, _, signin, _ = parts
    challenge = signin.request_code(LEAD, "a")["challenge_id"]
    token, principal, _ = signin.verify(challenge, code_for(SECRET, challenge))
    assert principal.role == "lead" and principal.unit_id == "u-1" and token.startswith("sz2.")
    with pytest.raises(Refused, match="已使用"):
        signin.verify(challenge, code_for(SECRET, challenge))
    clock.advance(seconds=61)
    challenge = signin.request_code(LEAD, "a")["challenge_id"]
    clock.advance(seconds=300)
    with pytest.raises(Refused, match="过期"):
        signin.verify(challenge, code_for(SECRET, challenge))
    clock.advance(seconds=61)
    challenge = signin.request_code(LEAD, "a")["challenge_id"]
    messages = []
    for _ in range(5):
        with pytest.raises(Refused) as wrong:
            signin.verify(challenge, "999999" if code_for(SECRET, challenge) != "999999" else "888888")
        messages.append(wrong.value.message)
    assert messages[0].endswith("还可再试 4 次") and "已作废" in messages[-1]
    with pytest.raises(Refused, match="已作废"):
        signin.verify(challenge, code_for(SECRET, challenge))


def test_sessions_are_checked_revoked_and_follow_the_post(parts):
    _, org, signin, sessions = parts
    challenge = signin.request_code(LEAD, "a")["challenge_id"]
    token, _, _ = signin.verify(challenge, code_for(SECRET, challenge))
    principal = TokenIssuer(SECRET).verify(token, parts[0].now().timestamp())
    assert sessions.allows(principal)
    org.units["u-1"]["lead"] = {"name": "新邻长", "phone": "13873199999"}
    assert not sessions.allows(principal)           # at once, before any event
    assert sessions.reconcile(T) == 1
    doc = sessions.sessions.get(principal.session_id)
    assert doc["revoked_reason"] == "lead_removed" and doc["outbox"][0]["type"] == "access.revoked"
    assert TokenIssuer(SECRET).verify(token, parts[0].now().timestamp() + 13 * 3600) is None   # expired


def test_a_session_token_needs_its_session_id_and_expiry():
    issuer = TokenIssuer(SECRET)
    token = issuer.issue_session(Principal(role="lead", townships=(T,), unit_id="u-1", session_id="s1"), 1000)
    assert issuer.verify(token, 999).session_id == "s1"
    assert issuer.verify(token, 1000) is None and issuer.verify(token) is None
    assert issuer.verify(token[:-2] + "xx", 999) is None
    assert issuer.csrf_token("s1") != issuer.csrf_token("s2")


def test_notify_stores_the_code_masked_and_sends_it_clear():
    clock = FakeClock(datetime(2026, 11, 2, 14, 30, tzinfo=timezone.utc))   # 22:30 local: quiet hours
    console = ConsoleCodes(ConsoleChannel(now=clock.now))
    sent = []
    console.terminal = sent.append
    service = NotifyService(MemoryStore(), {"console": console}, clock, secret=SECRET)
    service.on_signin_code({"id": "e" * 32, "type": "signin.code_requested", "township": T,
                            "occurred_at": "2026-11-02T14:30:00Z", "version": 1, "correlation_id": None,
                            "payload": {"challenge_id": "ch-1", "recipient_id": "person:1", "name": "周桂香",
                                        "phone": LEAD, "wecom_id": None, "expires_at": "x", "urgent": True}})
    code = code_for(SECRET, "ch-1")
    [stored] = service.deliveries.find({})
    assert stored["status"] == "delivered" and stored["hold_reason"] is None     # urgent: not held
    assert MASK in stored["text"] and code not in json.dumps(stored, ensure_ascii=False)
    assert sent[0].text == stored["text"].replace(MASK, code) and sent[0].params["code"] == code
    assert phone_key(SECRET, LEAD) != LEAD


def test_every_service_refuses_a_session_its_deny_table_holds():
    """What intake, escalation and notify do with access.revoked: the next request with it is refused."""
    from shared.auth import Authenticator
    from shared.revocations import Revocations

    clock = FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc))
    issuer = TokenIssuer(SECRET)
    denied = Revocations(MemoryStore(), clock)
    auth = Authenticator(None, issuer, clock)
    auth.session_checks.append(denied.allows)
    token = issuer.issue_session(Principal(role="staff", townships=(T,), session_id="s-1", account_id="a"),
                                 clock.now().timestamp() + 3600)
    machine = issuer.issue(Principal(role="staff", townships=(T,)))
    assert auth.resolve(token).session_id == "s-1"
    event = {"payload": {"session_ids": ["s-1"], "account_id": "a", "reason": "signed_out",
                         "expires_at": "2026-11-02T02:00:00Z"}}
    denied.handlers()["access.revoked"](event)
    denied.handlers()["access.revoked"](event)        # redelivered: the same row
    assert auth.resolve(token) is None and auth.resolve(machine) is not None
    assert len(denied.denied.find({})) == 1
