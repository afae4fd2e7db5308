"""The abuse suite, sign-in (issue 13, part 3): enumeration, brute force, code replay, a code for one
phone used for another, session fixation, CSRF, a lead of one township against another's cases and
a removed lead's old session. Every attack counts its successes: 0."""
from __future__ import annotations

import pytest

from services.dispatch.demo_roster import demo_roster_csv
from shared.auth import SESSION_COOKIE
from shared.domain.signin_codes import MAX_TRIES
from tests.support.runtime import ADMIN_HEADERS
from tests.support.signin import Phone, ask, bearer, seed, sign_in

B = "430382101"
UNKNOWN = [f"1391234{n:04d}" for n in range(12)]


@pytest.fixture
def world(system, web):
    phone = Phone(system)
    return {"runtime": system, "web": web, "phone": phone, **seed(system)}


def _verify(web, challenge_id, code):
    return web.post("/api/v1/signin/verify", json={"challenge_id": challenge_id, "sms_code": code})


def _shape(resp) -> tuple:
    body = {k: v for k, v in resp.json.items() if k != "challenge_id"}
    return resp.status_code, sorted(resp.json), body, resp.headers.get("Retry-After")


def test_enumeration_a_known_and_an_unknown_phone_answer_alike(world, clock):
    web = world["web"]
    for step in range(2):   # the first ask, then the same again within the minute (429)
        known = _shape(ask(web, world["lead_phone"], address="10.1.0.1"))
        for phone in UNKNOWN:
            assert _shape(ask(web, phone, address="10.1.0.2")) == known, (step, phone)
    # A wrong code is the same answer whether anyone owns the phone.
    clock.advance(seconds=61)
    a = ask(web, world["lead_phone"], address="10.1.0.3").json["challenge_id"]
    b = ask(web, UNKNOWN[0], address="10.1.0.3").json["challenge_id"]
    assert _verify(web, a, "000001").json == _verify(web, b, "000001").json


def test_brute_force_every_guess_of_an_hour_fails(world, clock):
    """5 codes an hour per phone, 5 tries each: 25 guesses an hour out of a million — and the right
    code itself is refused once a challenge's tries are spent."""
    web, runtime, phone = world["web"], world["runtime"], world["phone"]
    successes = attempts = 0
    for round_ in range(6):
        before = len(phone.messages)
        resp = ask(web, world["lead_phone"], address="10.2.0.1")
        if resp.status_code == 429:
            assert round_ == 5, "the hour's cap came early"
            break
        challenge_id = resp.json["challenge_id"]
        right = phone.wait_for_code(world["lead_phone"], runtime, before)
        guesses = [f"{n:06d}" for n in range(MAX_TRIES + 1) if f"{n:06d}" != right][:MAX_TRIES] + [right]
        for guess in guesses:
            attempts += 1
            successes += _verify(web, challenge_id, guess).status_code == 200
        clock.advance(seconds=61)
    assert attempts == 30 and successes == 0


def test_a_code_cannot_be_replayed(world):
    web, runtime, phone = world["web"], world["runtime"], world["phone"]
    before = len(phone.messages)
    challenge_id = ask(web, world["lead_phone"]).json["challenge_id"]
    code = phone.wait_for_code(world["lead_phone"], runtime, before)
    assert _verify(web, challenge_id, code).status_code == 200
    assert sum(_verify(web, challenge_id, code).status_code == 200 for _ in range(5)) == 0


def test_a_code_for_one_phone_does_not_open_another(world):
    web, runtime, phone = world["web"], world["runtime"], world["phone"]
    web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "李娟", "phone": "13700000002", "township": world["township"]})
    before = len(phone.messages)
    mine = ask(web, "13700000002", address="10.3.0.1").json["challenge_id"]
    my_code = phone.wait_for_code("13700000002", runtime, before)
    theirs = ask(web, world["lead_phone"], address="10.3.0.1").json["challenge_id"]
    unknown = ask(web, UNKNOWN[1], address="10.3.0.1").json["challenge_id"]
    successes = sum(_verify(web, other, my_code).status_code == 200 for other in (theirs, unknown))
    assert successes == 0
    assert _verify(web, mine, my_code).json["role"] == "staff"   # it was a good code, for its own phone


def test_session_fixation_a_planted_cookie_is_replaced_and_gains_nothing(world):
    web, runtime, phone = world["web"], world["runtime"], world["phone"]
    web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "攻击者", "phone": "13700000005", "township": world["township"]})
    planted = sign_in(web, runtime, phone, "13700000005", address="10.4.0.1")["token"]
    web.set_cookie(SESSION_COOKIE, planted, domain="localhost")
    before = len(phone.messages)
    page = web.post("/signin/code", data={"phone": world["lead_phone"]}, environ_base={"REMOTE_ADDR": "10.4.0.2"})
    challenge_id = page.get_data(as_text=True).split('name=challenge_id value="')[1].split('"')[0]
    code = phone.wait_for_code(world["lead_phone"], runtime, before)
    done = web.post("/signin/verify", data={"challenge_id": challenge_id, "sms_code": code})
    fresh = done.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert fresh != planted
    # The planted session is still only the attacker's: the victim's sign-in did not lift it.
    me = web.get("/api/v1/me", headers=bearer(planted)).json
    assert me["role"] == "staff" and me["unit_id"] is None
    assert web.get("/api/v1/me", headers=bearer(fresh)).json["role"] == "lead"


def test_csrf_a_cookie_write_without_the_session_token_does_nothing(world):
    web, runtime, phone = world["web"], world["runtime"], world["phone"]
    other = sign_in(web, runtime, phone, world["lead_phone"], address="10.5.0.1")
    other_csrf = web.get("/api/v1/me", headers=bearer(other["token"])).json["csrf_token"]
    before = len(phone.messages)
    page = web.post("/signin/code", data={"phone": world["lead_phone"]}, environ_base={"REMOTE_ADDR": "10.5.0.2"})
    assert page.status_code == 429   # within the minute: a page says so too
    world["runtime"].clock.advance(seconds=61)
    page = web.post("/signin/code", data={"phone": world["lead_phone"]}, environ_base={"REMOTE_ADDR": "10.5.0.2"})
    challenge_id = page.get_data(as_text=True).split('name=challenge_id value="')[1].split('"')[0]
    code = phone.wait_for_code(world["lead_phone"], runtime, before)
    web.post("/signin/verify", data={"challenge_id": challenge_id, "sms_code": code})
    forged = [web.post("/signout", data={}), web.post("/signout", data={"csrf_token": other_csrf}),
              web.post("/signout/everywhere", data={"csrf_token": "0" * 32}),
              web.post("/api/v1/signout/everywhere", json={}),
              web.post("/api/v1/signout", json={}, headers={"X-CSRF-Token": other_csrf})]
    assert [r.status_code for r in forged] == [403] * 5
    assert web.get("/my").status_code == 200   # still signed in: nothing was done
    assert web.get("/api/v1/me", headers=bearer(other["token"])).status_code == 200


def _township_b(world) -> str:
    """A second township with its own leads (the demo roster under other phone numbers) and a case."""
    org = world["runtime"].service("dispatch").api["org"]
    org.ensure_township(B, "邻镇", B[:6])
    org.import_roster(B, demo_roster_csv().replace(b"1387310", b"1387311"), "b.csv", actor="test")
    assert world["runtime"].drain(10)
    client_b = world["runtime"].issuer.issue(__import__("shared.auth", fromlist=["Principal"]).Principal(
        role="client", townships=(B,), name="b-app"))
    resp = world["web"].post("/api/v1/reports", headers=bearer(client_b), json={
        "township": B, "address": world["address"], "category": "environment",
        "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": "13800000001", "channel": "mini_program"})
    assert resp.status_code == 201
    assert world["runtime"].drain(10)
    return world["web"].get(f"/api/v1/townships/{B}/cases", headers=ADMIN_HEADERS).json[0]["id"]


def test_a_lead_of_one_township_cannot_touch_anothers_cases(world):
    web = world["web"]
    b_case = _township_b(world)
    token = sign_in(web, world["runtime"], world["phone"], world["lead_phone"])["token"]
    tries = [web.get(f"/api/v1/cases/{b_case}", headers=bearer(token)),
             web.post(f"/api/v1/cases/{b_case}/accept", json={}, headers=bearer(token)),
             web.post(f"/api/v1/cases/{b_case}/progress", json={"note": "已联系住户"}, headers=bearer(token)),
             web.get(f"/api/v1/townships/{B}/cases", headers=bearer(token))]
    assert sum(r.status_code < 400 for r in tries) == 0
    assert {r.status_code for r in tries} <= {403, 404}
    assert b_case not in [c["id"] for c in web.get("/api/v1/my/cases", headers=bearer(token)).json]


def test_a_lead_removed_by_a_roster_change_keeps_no_old_session(world):
    web, runtime = world["web"], world["runtime"]
    token = sign_in(web, runtime, world["phone"], world["lead_phone"])["token"]
    org = runtime.service("dispatch").api["org"]
    replaced = demo_roster_csv().replace(world["lead_phone"].encode(), b"13873199999")
    org.import_roster(world["township"], replaced, "new.csv", actor="test")
    calls = [web.get("/api/v1/my/cases", headers=bearer(token)), web.get("/api/v1/me", headers=bearer(token))]
    assert runtime.drain(10)
    calls += [web.post("/api/v1/reports", headers=bearer(token), json={
        "township": world["township"], "address": world["address"], "category": "environment",
        "description": "门口路灯坏了一个星期", "reporter_phone": "13800000001", "channel": "lead"}),
        web.get(f"/api/v1/townships/{world['township']}/cases", headers=bearer(token))]
    assert sum(r.status_code < 400 for r in calls) == 0
    for name in ("intake", "escalation", "notify"):   # and every service holds it in its deny table
        assert runtime.stores[name].collection("revoked_sessions").find({}), name


def test_sign_in_never_redirects_off_site(world):
    web, runtime, phone = world["web"], world["runtime"], world["phone"]
    for n, wanted in enumerate(("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)")):
        world["runtime"].clock.advance(seconds=61)
        before = len(phone.messages)
        page = web.post("/signin/code", data={"phone": world["lead_phone"], "next": wanted},
                        environ_base={"REMOTE_ADDR": f"10.6.0.{n}"})
        challenge_id = page.get_data(as_text=True).split('name=challenge_id value="')[1].split('"')[0]
        code = phone.wait_for_code(world["lead_phone"], runtime, before)
        done = web.post("/signin/verify", data={"challenge_id": challenge_id, "sms_code": code, "next": wanted})
        assert done.status_code == 303 and done.headers["Location"] in ("/my", "http://localhost/my"), wanted
