"""People sign in with a text-message code and see their cases (issue 13, part 3), over HTTP on
the embedded system: the code's rules with the fake clock, sessions (bearer and cookie), sign-out,
revocation in every service, accounts, and the code kept out of the delivery log and the logs."""
from __future__ import annotations

import logging

import pytest

from shared.auth import SESSION_COOKIE
from tests.support.runtime import ADMIN_HEADERS
from tests.support.signin import Phone, ask, bearer, seed, sign_in

@pytest.fixture
def world(system, web):
    phone = Phone(system)
    seeded = seed(system)
    return {"runtime": system, "web": web, "phone": phone, **seeded}


def _report(world) -> str:
    resp = world["web"].post("/api/v1/reports", headers=bearer(world["client"]), json={
        "township": world["township"], "address": world["address"], "category": "environment",
        "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": "13800000001", "channel": "mini_program"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert world["runtime"].drain(10)
    return resp.json["tracking_no"]


def test_a_lead_signs_in_with_the_sms_code_and_sees_their_cases(world, caplog):
    caplog.set_level(logging.DEBUG)
    tracking_no = _report(world)
    session = sign_in(world["web"], world["runtime"], world["phone"], world["lead_phone"])
    assert session["role"] == "lead" and session["unit_id"] == world["unit_id"]
    mine = world["web"].get("/api/v1/my/cases", headers=bearer(session["token"]))
    assert mine.status_code == 200
    assert tracking_no in [c["tracking_no"] for c in mine.json]
    code = world["phone"].last_code(world["lead_phone"])
    # The code is nowhere but on the phone: not in the delivery log, not in any log line.
    log = world["web"].get(f"/api/v1/deliveries?township={world['township']}", headers=ADMIN_HEADERS)
    signin_rows = [d for d in log.json if d["template_key"].startswith("signin.")]
    assert signin_rows and all("******" in d["text"] and code not in d["text"] for d in signin_rows)
    assert not [r for r in caplog.records if code in r.getMessage()]


def test_an_unknown_phone_gets_exactly_the_same_answer(world):
    known, unknown = ask(world["web"], world["lead_phone"]), ask(world["web"], "13912345678")
    assert known.status_code == unknown.status_code == 202
    assert set(known.json) == set(unknown.json)
    assert {k: v for k, v in known.json.items() if k != "challenge_id"} == \
        {k: v for k, v in unknown.json.items() if k != "challenge_id"}
    again_known, again_unknown = ask(world["web"], world["lead_phone"]), ask(world["web"], "13912345678")
    assert again_known.status_code == again_unknown.status_code == 429
    assert again_known.json["message"] == again_unknown.json["message"]
    assert world["runtime"].drain(10)
    assert world["phone"].last_code("13912345678") is None


def test_codes_are_limited_per_minute_and_per_hour(world, clock):
    statuses = []
    for _ in range(5):
        statuses.append(ask(world["web"], world["lead_phone"]).status_code)
        statuses.append(ask(world["web"], world["lead_phone"]).status_code)   # within the minute
        clock.advance(seconds=61)
    assert statuses == [202, 429] * 5
    sixth = ask(world["web"], world["lead_phone"])
    assert sixth.status_code == 429 and "一小时" in sixth.json["message"] and int(sixth.headers["Retry-After"]) > 0
    clock.advance(hours=1)
    assert ask(world["web"], world["lead_phone"]).status_code == 202


def test_a_client_address_has_its_own_cap(world, clock):
    answers = [ask(world["web"], f"1390000{n:04d}", address="10.9.9.9").status_code for n in range(31)]
    assert answers[:30] == [202] * 30 and answers[30] == 429
    assert ask(world["web"], "13900009999", address="10.9.9.10").status_code == 202


def _challenge(world, phone=None) -> tuple[str, str]:
    phone = phone or world["lead_phone"]
    before = len(world["phone"].messages)
    resp = ask(world["web"], phone)
    assert resp.status_code == 202
    return resp.json["challenge_id"], world["phone"].wait_for_code(phone, world["runtime"], before)


def _verify(world, challenge_id, code):
    return world["web"].post("/api/v1/signin/verify", json={"challenge_id": challenge_id, "sms_code": code})


def test_five_wrong_tries_and_the_code_is_gone(world):
    challenge_id, code = _challenge(world)
    wrong = "000000" if code != "000000" else "111111"
    answers = [_verify(world, challenge_id, wrong) for _ in range(5)]
    assert [a.status_code for a in answers] == [401] * 5
    assert "还可再试 4 次" in answers[0].json["message"] and "已作废" in answers[-1].json["message"]
    assert answers[0].json["errors"]["json"]["sms_code"]
    late = _verify(world, challenge_id, code)
    assert late.status_code == 401 and "已作废" in late.json["message"]


def test_a_code_works_once_and_only_for_five_minutes(world, clock):
    challenge_id, code = _challenge(world)
    assert _verify(world, challenge_id, code).status_code == 200
    replay = _verify(world, challenge_id, code)
    assert replay.status_code == 401 and "已使用" in replay.json["message"]
    clock.advance(seconds=61)
    challenge_id, code = _challenge(world)
    clock.advance(seconds=301)
    expired = _verify(world, challenge_id, code)
    assert expired.status_code == 401 and "过期" in expired.json["message"]


def test_bad_input_is_a_chinese_message_naming_the_field(world):
    web = world["web"]
    landline = web.post("/api/v1/signin/code", json={"phone": "0731-5568123"})
    assert landline.status_code == 422 and "手机号" in landline.json["errors"]["json"]["phone"][0]
    short = web.post("/api/v1/signin/verify", json={"challenge_id": "x" * 20, "sms_code": "12"})
    assert short.status_code == 422 and "6位数字" in short.json["errors"]["json"]["sms_code"][0]
    unknown = web.post("/api/v1/signin/verify", json={"challenge_id": "x" * 20, "sms_code": "123456"})
    assert unknown.status_code == 401 and "重新获取" in unknown.json["message"]


def test_sign_out_and_sign_out_everywhere_end_sessions_at_once(world, clock):
    web, runtime, phone = world["web"], world["runtime"], world["phone"]
    first = sign_in(web, runtime, phone, world["lead_phone"])["token"]
    clock.advance(seconds=61)
    second = sign_in(web, runtime, phone, world["lead_phone"])["token"]
    clock.advance(seconds=61)
    third = sign_in(web, runtime, phone, world["lead_phone"])["token"]
    assert web.post("/api/v1/signout", headers=bearer(first)).json == {"ended": 1}
    assert web.get("/api/v1/my/cases", headers=bearer(first)).status_code == 401
    assert web.get("/api/v1/my/cases", headers=bearer(second)).status_code == 200
    assert web.post("/api/v1/signout/everywhere", headers=bearer(second)).json == {"ended": 2}
    for token in (second, third):
        assert web.get("/api/v1/my/cases", headers=bearer(token)).status_code == 401
    # Every other service heard it: their deny tables hold the sessions.
    assert runtime.drain(10)
    for name in ("intake", "escalation", "notify"):
        denied = runtime.stores[name].collection("revoked_sessions").find({})
        assert len(denied) == 3, name


def test_a_session_expires(world, clock):
    token = sign_in(world["web"], world["runtime"], world["phone"], world["lead_phone"])["token"]
    clock.advance(hours=12, seconds=1)
    assert world["web"].get("/api/v1/my/cases", headers=bearer(token)).status_code == 401


def test_a_lead_removed_by_a_red_card_loses_access_at_once(world, clock):
    web, runtime = world["web"], world["runtime"]
    token = sign_in(web, runtime, world["phone"], world["lead_phone"])["token"]
    assert web.get("/api/v1/my/cases", headers=bearer(token)).status_code == 200
    runtime.service("dispatch").api["org"].vacate(world["unit_id"], actor="test", reason="红牌")
    # Before any event has travelled: dispatch checks the post's holder itself.
    assert web.get("/api/v1/my/cases", headers=bearer(token)).status_code == 401
    assert web.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert runtime.drain(10)
    for name in ("intake", "escalation", "notify"):
        assert runtime.stores[name].collection("revoked_sessions").find({}), name
    # And the phone no longer signs in: it gets the same answer as any unknown number, no message.
    sent = len(world["phone"].messages)
    clock.advance(seconds=61)
    assert ask(web, world["lead_phone"], address="10.0.0.2").status_code == 202
    assert runtime.drain(10) and len(world["phone"].messages) == sent


def test_accounts_township_admin_adds_staff_who_sign_in(world):
    web, runtime, phone, township = world["web"], world["runtime"], world["phone"], world["township"]
    made = web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "township_admin", "name": "王主任", "phone": "13700000001", "township": township})
    assert made.status_code == 201 and made.json["phone"] == "137****0001"
    admin = sign_in(web, runtime, phone, "13700000001")["token"]
    staff = web.post("/api/v1/accounts", headers=bearer(admin), json={
        "kind": "staff", "name": "李娟", "phone": "13700000002", "township": township, "wecom_id": "LiJuan"})
    assert staff.status_code == 201
    foreign = web.post("/api/v1/accounts", headers=bearer(admin), json={
        "kind": "staff", "name": "外镇", "phone": "13700000003", "township": "430382101"})
    assert foreign.status_code == 404
    promote = web.post("/api/v1/accounts", headers=bearer(admin), json={
        "kind": "township_admin", "name": "自封", "phone": "13700000004", "township": township})
    assert promote.status_code == 403 and "运维" in promote.json["message"]
    twice = web.post("/api/v1/accounts", headers=bearer(admin), json={
        "kind": "staff", "name": "重复", "phone": "13700000002", "township": township})
    assert twice.status_code == 409 and twice.json["errors"]["json"]["phone"]
    listed = web.get(f"/api/v1/accounts?township={township}", headers=bearer(admin))
    assert [a["name"] for a in listed.json] == ["李娟"]
    staff_token = sign_in(web, runtime, phone, "13700000002")["token"]
    cases = web.get(f"/api/v1/townships/{township}/cases", headers=bearer(staff_token))
    assert cases.status_code == 200
    assert web.delete(f"/api/v1/accounts/{staff.json['id']}", headers=bearer(admin)).status_code == 204
    assert web.get(f"/api/v1/townships/{township}/cases", headers=bearer(staff_token)).status_code == 401


def test_missing_account_fields_are_named(world):
    resp = world["web"].post("/api/v1/accounts", headers=ADMIN_HEADERS,
                             json={"kind": "staff", "name": "李娟", "phone": "13700000002"})
    assert resp.status_code == 422 and "township" in resp.json["errors"]["json"]


def test_the_pages_sign_in_with_a_cookie_and_writes_need_the_csrf_token(world):
    web, runtime = world["web"], world["runtime"]
    tracking_no = _report(world)
    web.set_cookie(SESSION_COOKIE, "sz2.planted-by-someone-else", domain="localhost")
    asked = web.post("/signin/code", data={"phone": world["lead_phone"]}, environ_base={"REMOTE_ADDR": "10.0.0.3"})
    assert asked.status_code == 200 and "输入验证码" in asked.get_data(as_text=True)
    challenge_id = asked.get_data(as_text=True).split('name=challenge_id value="')[1].split('"')[0]
    assert runtime.drain(10)
    done = web.post("/signin/verify", data={"challenge_id": challenge_id, "next": "/my",
                                             "sms_code": world["phone"].last_code(world["lead_phone"])})
    assert done.status_code == 303 and done.headers["Location"].endswith("/my")
    cookie = done.headers["Set-Cookie"]
    assert cookie.startswith(SESSION_COOKIE + "=sz2.") and "HttpOnly" in cookie and "Secure" in cookie
    assert "SameSite=Lax" in cookie and "planted" not in cookie
    page = web.get("/my")
    assert page.status_code == 200 and tracking_no in page.get_data(as_text=True)
    case_id = web.get("/api/v1/my/cases").json[0]["id"]
    refused = web.post(f"/api/v1/cases/{case_id}/accept", json={})
    assert refused.status_code == 403 and "CSRF" in refused.json["message"]
    csrf = web.get("/api/v1/me").json["csrf_token"]
    accepted = web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    out = web.post("/signout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert web.get("/my").status_code == 303


def test_cli_token_finds_the_embedded_secret(tmp_path, monkeypatch, capsys):
    import json

    from shared.auth import TokenIssuer
    from shared.cli import main

    (tmp_path / "demo-credentials.json").write_text(json.dumps({"secret": "s" * 40, "admin_token": "x"}))
    monkeypatch.delenv("SANZHANG_SECRET", raising=False)
    monkeypatch.setenv("SANZHANG_DATA_DIR", str(tmp_path))
    assert main(["token", "--role", "staff", "--township", "430382100"]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenIssuer("s" * 40).verify(token).townships == ("430382100",)


def test_a_message_carries_a_short_link_that_opens_the_case_after_sign_in(tmp_path, clock):
    """SANZHANG_NOTIFY_LINK_BASE set: the 邻长's message has <base>/l/<code>; the link leads to
    sign-in and then to the case; for anyone else, and for a made-up code, it is the same 404."""
    import re

    from shared.runtime import SERVICES, Runtime
    from shared.web import create_app
    from tests.support.runtime import make_settings

    settings = make_settings(tmp_path, extra={"SANZHANG_NOTIFY_LINK_BASE": "https://qx.cn"})
    runtime = Runtime(settings, SERVICES, clock=clock).start()
    try:
        app = create_app(runtime)
        app.testing = True
        web = app.test_client()
        world = {"runtime": runtime, "web": web, "phone": Phone(runtime), **seed(runtime)}
        tracking_no = _report(world)
        log = web.get(f"/api/v1/deliveries?township={world['township']}", headers=ADMIN_HEADERS).json
        text = next(d["text"] for d in log if d["template_key"] == "case.assigned:assignee")
        assert len(text) <= 70
        path = re.search(r"https://qx\.cn(/l/[A-Z0-9]{8})", text).group(1)
        anonymous = web.get(path)
        assert anonymous.status_code == 303 and anonymous.headers["Location"].endswith(f"/signin?next={path}")
        asked = web.post("/signin/code", data={"phone": world["lead_phone"], "next": path})
        challenge_id = asked.get_data(as_text=True).split('name=challenge_id value="')[1].split('"')[0]
        code = world["phone"].wait_for_code(world["lead_phone"], runtime, 0)
        done = web.post("/signin/verify", data={"challenge_id": challenge_id, "sms_code": code, "next": path})
        assert done.status_code == 303 and done.headers["Location"].endswith(path)
        opened = web.get(path)   # on to the lead's workbench, at the case
        assert opened.status_code == 303 and "/lead/cases/" in opened.headers["Location"]
        opened = web.get(opened.headers["Location"])
        assert opened.status_code == 200 and tracking_no in opened.get_data(as_text=True)
        made_up = web.get("/l/ABCDEFGH")
        # Another lead of the township: the same answer as a made-up code.
        org = runtime.service("dispatch").api["org"]
        other = next(u for u in org.tree(world["township"]) if u["level"] == "neighbourhood"
                     and u.get("lead") and u["_id"] != world["unit_id"])
        clock.advance(seconds=61)
        web.post("/signout", data={"csrf_token": web.get("/api/v1/me").json["csrf_token"]})
        asked = web.post("/signin/code", data={"phone": other["lead"]["phone"]})
        challenge_id = asked.get_data(as_text=True).split('name=challenge_id value="')[1].split('"')[0]
        code = world["phone"].wait_for_code(other["lead"]["phone"], runtime, 0)
        web.post("/signin/verify", data={"challenge_id": challenge_id, "sms_code": code})
        foreign = web.get(path)
        assert foreign.status_code == made_up.status_code == 404
        assert foreign.get_data() == made_up.get_data()
    finally:
        runtime.stop()


def test_an_administrator_edits_staff_and_a_new_phone_ends_the_old_sessions(world, clock):
    web, runtime, phone, township = world["web"], world["runtime"], world["phone"], world["township"]
    made = web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "李娟", "phone": "13700000002", "township": township, "title": "综治专干"})
    assert made.json["title"] == "综治专干"
    token = sign_in(web, runtime, phone, "13700000002")["token"]
    renamed = web.patch(f"/api/v1/accounts/{made.json['id']}", headers=ADMIN_HEADERS, json={"name": "李娟娟"})
    assert renamed.status_code == 200 and renamed.json["name"] == "李娟娟"
    assert web.get("/api/v1/me", headers=bearer(token)).status_code == 200     # a new name keeps the session
    moved = web.patch(f"/api/v1/accounts/{made.json['id']}", headers=ADMIN_HEADERS, json={"phone": "13700000008"})
    assert moved.status_code == 200 and moved.json["phone"] == "137****0008"
    assert web.get("/api/v1/me", headers=bearer(token)).status_code == 401     # a new phone ends it
    assert sign_in(web, runtime, phone, "13700000008")["role"] == "staff"
    web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "王芳", "phone": "13700000009", "township": township})
    taken = web.patch(f"/api/v1/accounts/{made.json['id']}", headers=ADMIN_HEADERS, json={"phone": "13700000009"})
    assert taken.status_code == 409 and taken.json["errors"]["json"]["phone"]


def test_a_city_administrator_adds_a_department_clerk_who_signs_in_as_the_department(world):
    from tests.support.escalation import CITY, dept_id, setup_city

    web, runtime, phone = world["web"], world["runtime"], world["phone"]
    setup_city(web, matrix=False)
    assert web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "city_admin", "name": "市三长办", "phone": "13700000021", "city": CITY}).status_code == 201
    admin = sign_in(web, runtime, phone, "13700000021")["token"]
    assert web.get(f"/api/v1/cities/{CITY}/departments", headers=bearer(admin)).status_code == 200
    clerk = web.post("/api/v1/accounts", headers=bearer(admin), json={
        "kind": "department", "name": "住建局经办人", "phone": "13700000022", "department_id": dept_id("zjj")})
    assert clerk.status_code == 201
    other_city = web.post("/api/v1/accounts", headers=bearer(admin), json={
        "kind": "department", "name": "外市", "phone": "13700000023", "department_id": "430521-zjj"})
    assert other_city.status_code == 403 and "本市" in other_city.json["message"]
    staff = web.post("/api/v1/accounts", headers=bearer(admin), json={
        "kind": "staff", "name": "越权", "phone": "13700000024", "township": world["township"]})
    assert staff.status_code == 403
    session = sign_in(web, runtime, phone, "13700000022")
    assert session["role"] == "department" and session["department_id"] == dept_id("zjj")
    mine = web.get("/api/v1/department", headers=bearer(session["token"]))
    assert mine.status_code == 200 and mine.json["id"] == dept_id("zjj")
    assert web.get(f"/api/v1/accounts?city={CITY}", headers=bearer(admin)).json[0]["name"] == "住建局经办人"
