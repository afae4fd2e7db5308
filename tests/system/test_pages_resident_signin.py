"""A resident's SMS sign-in on intake's pages, over HTTP (no browser): phone → code → 我的反映;
reporting for one's own household with the verified phone; and the sign-in's abuse — brute force,
replay, a code for another phone, forged forms (CSRF), another township, a planted session —
each with 0 successes."""
from __future__ import annotations

import re

import pytest

from shared.domain.signin_codes import code_for
from shared.runtime import SERVICES, Runtime
from shared.web import create_app
from tests.support.dispatch import demo_township
from tests.support.runtime import make_settings
from tests.support.signin import Phone

T, OTHER = "430382100", "430382101"
MINE, THEIRS = "13973200001", "13973200002"   # households of the demo roster
STRANGER = "13500000077"                        # on no roster: residents need none
SECRET_FIELD = "resident_csrf"


@pytest.fixture
def system(tmp_path, clock):
    runtime = Runtime(make_settings(tmp_path, pages_townships=f"{T}=清溪镇,{OTHER}=银田镇"), SERVICES,
                      clock=clock).start()
    demo_township(runtime)
    assert runtime.drain(15)
    yield runtime
    runtime.stop()


@pytest.fixture
def phone_box(system):
    return Phone(system)


def client(system):
    return create_app(system).test_client()


def hidden(page: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', page).group(1)


def ask(web, phone: str, township: str = T, address: str = "10.0.0.1", nxt: str = "mine"):
    page = web.get(f"/resident/{township}/signin?next={nxt}").get_data(as_text=True)
    return web.post(f"/resident/{township}/signin", data={"phone": phone, "next": nxt,
                                                           SECRET_FIELD: hidden(page, SECRET_FIELD)},
                    environ_base={"REMOTE_ADDR": address})


def enter(web, code: str, township: str = T):
    page = web.get(f"/resident/{township}/signin/code").get_data(as_text=True)
    return web.post(f"/resident/{township}/signin/code", data={"sms_code": code, SECRET_FIELD: hidden(page, SECRET_FIELD)})


def sign_in(system, web, phone_box, phone: str, township: str = T, nxt: str = "mine"):
    before = len(phone_box.messages)
    asked = ask(web, phone, township, nxt=nxt)
    assert asked.status_code == 303, asked.get_data(as_text=True)
    code = phone_box.wait_for_code(phone, system, before)
    assert code, "no code reached the phone"
    done = enter(web, code, township)
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/resident/{township}/{nxt}")
    return done


def session_cookie(web):
    cookie = web.get_cookie("sz_resident", path="/resident/")
    return cookie.value if cookie else None


def signed_in(web, township: str = T) -> bool:
    return web.get(f"/resident/{township}/mine").status_code == 200


def reports(system) -> list[dict]:
    return system.service("intake").api["reports"].collection.find({}, limit=100)


def anonymous_report(system, phone: str, description: str, township: str = T) -> str:
    web = client(system)
    page = web.get(f"/resident/{township}/report").get_data(as_text=True)
    resp = web.post(f"/resident/{township}/report", content_type="multipart/form-data", data={
        "category": "road", "description": description, "address": "韶山村一组12号", "phone": phone,
        "submission": hidden(page, "submission")})
    assert resp.status_code == 303
    return resp.headers["Location"].rsplit("/", 1)[1]


def signed_in_report(web, **fields):
    page = web.get(f"/resident/{T}/report").get_data(as_text=True)
    data = {"category": "environment", "description": "门口的垃圾三天没人收了", "submission": hidden(page, "submission"),
            SECRET_FIELD: hidden(page, SECRET_FIELD), **fields}
    return web.post(f"/resident/{T}/report", data=data, content_type="multipart/form-data")


# -- the way in ----------------------------------------------------------------------------------
def test_any_phone_signs_in_and_the_cookie_is_the_residents_alone(system, phone_box):
    web = client(system)
    assert web.get(f"/resident/{T}/mine").headers["Location"].endswith(f"/resident/{T}/signin?next=mine")
    asked = ask(web, STRANGER)
    pending = [h for h in asked.headers.getlist("Set-Cookie") if h.startswith("sz_resident_signin=")]
    assert asked.status_code == 303 and pending and STRANGER not in pending[0]
    code_page = web.get(f"/resident/{T}/signin/code").get_data(as_text=True)
    assert "135****0077" in code_page and STRANGER not in code_page
    code = phone_box.wait_for_code(STRANGER, system, 0)
    text = next(m.text for m in phone_box.messages if m.phone == STRANGER)
    assert "群众服务" in text and code in text      # a resident's wording, in Chinese
    done = enter(web, code)
    cookie = next(h for h in done.headers.getlist("Set-Cookie") if h.startswith("sz_resident="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/resident/" in cookie
    assert STRANGER not in cookie and STRANGER not in done.headers["Location"]
    mine = web.get(f"/resident/{T}/mine").get_data(as_text=True)
    assert "我的反映" in mine and "135****0077" in mine and STRANGER not in mine
    # the resident's cookie opens no API and no other service's page
    assert web.get("/api/v1/me").status_code == 401 and web.get("/lead/").status_code in (302, 303)


def test_the_cookie_is_secure_on_https(system, phone_box):
    web = create_app(system).test_client()
    page = web.get(f"/resident/{T}/signin", base_url="https://localhost")
    assert "Secure" in page.headers["Set-Cookie"]


def test_signing_out_ends_the_session_here_and_everywhere(system, phone_box):
    phone_1, phone_2 = client(system), client(system)
    sign_in(system, phone_1, phone_box, MINE)
    system.clock.advance(seconds=61)
    sign_in(system, phone_2, phone_box, MINE)
    stolen = session_cookie(phone_1)
    page = phone_1.get(f"/resident/{T}/mine").get_data(as_text=True)
    forged = phone_1.post(f"/resident/{T}/signout", data={})
    assert forged.status_code == 403 and signed_in(phone_1)            # CSRF: no sign-out by another site
    out = phone_1.post(f"/resident/{T}/signout", data={SECRET_FIELD: hidden(page, SECRET_FIELD)})
    assert out.status_code == 303 and not signed_in(phone_1) and signed_in(phone_2)
    phone_1.set_cookie("sz_resident", stolen, path="/resident/")
    assert not signed_in(phone_1)                                       # the old token is dead
    page = phone_2.get(f"/resident/{T}/mine").get_data(as_text=True)
    phone_2.post(f"/resident/{T}/signout/everywhere", data={SECRET_FIELD: hidden(page, SECRET_FIELD)})
    assert not signed_in(phone_2)


# -- 我的反映 --------------------------------------------------------------------------------------
def test_my_reports_show_only_my_phones_reports_and_open_without_the_last_four(system, phone_box):
    first = anonymous_report(system, MINE, "路面塌了一个坑，很危险")
    anonymous_report(system, THEIRS, "邻居家的路灯不亮了")
    elsewhere = anonymous_report(system, MINE, "银田镇的桥栏杆断了", township=OTHER)
    system.clock.advance(minutes=1)
    second = anonymous_report(system, MINE, "村道上的水沟堵了")
    web = client(system)
    sign_in(system, web, phone_box, MINE)
    mine = web.get(f"/resident/{T}/mine").get_data(as_text=True)
    listed = re.findall(r'data-tracking-no="(\w+)"', mine)
    assert listed == [second, first]                                   # newest first, this township only
    assert "邻居家的路灯" not in mine and elsewhere not in listed and ("已受理" in mine or "已派单" in mine)
    track = web.get(f"/resident/{T}/track/{first}")
    assert track.status_code == 200 and "路面塌了一个坑" in track.get_data(as_text=True)
    theirs = [r["tracking_no"] for r in reports(system) if "邻居家" in r["description"]][0]
    assert web.get(f"/resident/{T}/track/{theirs}").status_code == 303   # asks for the proof
    assert web.get(f"/resident/{OTHER}/track/{elsewhere}").status_code == 303   # a session is one township's
    assert web.get(f"/resident/{OTHER}/mine").status_code == 303


def test_reports_are_found_by_the_phones_keyed_hash_not_the_phone(system, phone_box):
    anonymous_report(system, MINE, "路面塌了一个坑，很危险")
    stored = reports(system)[0]
    assert stored["phone_key"] and MINE not in stored["phone_key"]
    sessions = system.service("intake").api["resident_access"].sessions.sessions
    web = client(system)
    sign_in(system, web, phone_box, MINE)
    doc = sessions.find({"phone_key": stored["phone_key"]}, limit=5)[0]
    assert MINE not in str(doc) and doc["phone_sealed"].startswith("sealed:")


# -- 为我家反映 ------------------------------------------------------------------------------------
def test_a_signed_in_resident_reports_for_their_household(system, phone_box):
    web = client(system)
    sign_in(system, web, phone_box, MINE, nxt="report")
    page = web.get(f"/resident/{T}/report").get_data(as_text=True)
    assert "139****0001" in page and "为我家反映" in page and MINE not in page and 'name="phone"' not in page
    done = signed_in_report(web, where="home")
    assert done.status_code == 303
    report = reports(system)[0]
    assert report["reporter_phone"] == MINE and not report.get("address") and report["channel"] == "web"
    assert system.drain(15)
    case = system.service("dispatch").api["cases"].get(report["case_id"] or "") or \
        system.service("dispatch").api["cases"].collection.find({"report_id": report["_id"]}, limit=1)[0]
    org = system.service("dispatch").api["org"]
    household = org.locate(T, None, None, MINE)
    assert household and case["neighbourhood_id"] == household["neighbourhood_id"]   # located by the phone
    follow = client(system)
    follow.set_cookie("sz_resident", session_cookie(web), path="/resident/")
    track = follow.get(done.headers["Location"]).get_data(as_text=True)      # no tracking code, no cookie
    assert "门口的垃圾三天没人收了" in track and "我家（按登记的电话定位）" in track


def test_elsewhere_needs_an_address_and_keeps_what_was_typed(system, phone_box):
    web = client(system)
    sign_in(system, web, phone_box, MINE, nxt="report")
    resp = signed_in_report(web, where="elsewhere", description="村口的桥栏杆断了两根")
    text = resp.get_data(as_text=True)
    assert 'id="address-error"' in text and "村口的桥栏杆断了两根</textarea>" in text and MINE not in text
    assert reports(system) == []
    assert signed_in_report(web, where="elsewhere", address="韶山村二组3号").status_code == 303
    assert reports(system)[0]["address"] == "韶山村二组3号"


# -- abuse: 0 successes -------------------------------------------------------------------------
def test_brute_force_ends_the_challenge(system, phone_box):
    web = client(system)
    ask(web, MINE)
    right = phone_box.wait_for_code(MINE, system, 0)
    wrong = [c for c in (f"{n:06d}" for n in range(10)) if c != right][:5]
    answers = [enter(web, c) for c in wrong]
    assert [a.status_code for a in answers] == [401] * 5 and "已作废" in answers[-1].get_data(as_text=True)
    assert enter(web, right).status_code == 401 and not signed_in(web)


def test_a_code_works_once(system, phone_box):
    web = client(system)
    ask(web, MINE)
    code = phone_box.wait_for_code(MINE, system, 0)
    pending = web.get_cookie("sz_resident_signin", path="/resident/").value
    assert enter(web, code).status_code == 303
    replay = client(system)
    replay.set_cookie("sz_resident_signin", pending, path="/resident/")
    assert enter(replay, code).status_code == 401 and not signed_in(replay)


def test_a_code_for_another_phone_opens_nothing(system, phone_box):
    victim, attacker = client(system), client(system)
    ask(attacker, STRANGER, address="10.0.0.2")
    ask(victim, MINE)
    victims_code = phone_box.wait_for_code(MINE, system, 0)
    assert enter(attacker, victims_code).status_code == 401 and not signed_in(attacker)


def test_forged_forms_change_nothing(system, phone_box):
    web = client(system)
    web.get(f"/resident/{T}/signin")
    no_csrf = web.post(f"/resident/{T}/signin", data={"phone": MINE})
    assert no_csrf.status_code == 403 and phone_box.wait_for_code(MINE, system, 0, timeout=1) is None
    sign_in(system, web, phone_box, MINE, nxt="report")
    page = web.get(f"/resident/{T}/report").get_data(as_text=True)
    forged = web.post(f"/resident/{T}/report", content_type="multipart/form-data", data={
        "category": "road", "description": "别的网站替我提交的", "submission": hidden(page, "submission"), "where": "home"})
    assert forged.status_code == 403 and reports(system) == []


def test_another_townships_challenge_or_session_is_none_here(system, phone_box):
    web = client(system)
    ask(web, MINE)
    code = phone_box.wait_for_code(MINE, system, 0)
    assert web.get(f"/resident/{OTHER}/signin/code").status_code == 303      # the sign-in is this township's
    access = system.service("intake").api["resident_access"]
    pending = access._pending.loads(web.get_cookie("sz_resident_signin", path="/resident/").value)
    from shared.signin_challenges import Refused
    with pytest.raises(Refused):
        access.signin.verify(OTHER, pending["c"], code)
    assert enter(web, code).status_code == 303                              # still good at home
    assert signed_in(web, T) and not signed_in(web, OTHER)


def test_a_planted_session_is_replaced_at_sign_in(system, phone_box):
    attacker = client(system)
    sign_in(system, attacker, phone_box, STRANGER)
    planted = session_cookie(attacker)
    victim = client(system)
    victim.set_cookie("sz_resident", planted, path="/resident/")
    victim.set_cookie("sz_resident", "szres1.forged", path="/resident/")
    assert not signed_in(victim)                                             # a forged token is nobody
    victim.set_cookie("sz_resident", planted, path="/resident/")
    system.clock.advance(seconds=61)
    sign_in(system, victim, phone_box, MINE)
    assert session_cookie(victim) != planted
    anonymous_report(system, MINE, "路面塌了一个坑，很危险")
    attackers_view = attacker.get(f"/resident/{T}/mine").get_data(as_text=True)
    assert "路面塌了一个坑" not in attackers_view                              # the planted id gained nothing


def test_codes_are_limited_per_phone_and_per_address(system, phone_box):
    web = client(system)
    assert ask(web, MINE).status_code == 303
    again = ask(web, MINE)
    assert again.status_code == 200 and "秒后再试" in again.get_data(as_text=True)
    for n in range(30):
        ask(client(system), f"1350000{n:04d}", address="10.9.9.9")
    refused = ask(client(system), "13600000001", address="10.9.9.9")
    assert "本网络获取验证码次数过多" in refused.get_data(as_text=True)


def test_the_code_is_never_stored_nor_logged(system, phone_box):
    web = client(system)
    ask(web, MINE)
    code = phone_box.wait_for_code(MINE, system, 0)
    challenges = system.service("intake").api["resident_access"].signin.rules.repo.collection.find({}, limit=5)
    assert challenges and all(code not in str(c) and MINE not in str(c) for c in challenges)
    assert code == code_for(system.settings.secret, challenges[0]["_id"])


def test_a_signed_in_resident_acts_on_their_own_report_from_its_page(system, phone_box):
    web = client(system)
    sign_in(system, web, phone_box, MINE, nxt="report")
    done = signed_in_report(web, where="elsewhere", address="韶山村一组12号", category="social",
                            description="低保怎么申请")
    assert system.drain(15)
    page = web.get(done.headers["Location"]).get_data(as_text=True)
    assert 'id="answer"' in page                                            # answered at once
    forged = web.post(done.headers["Location"] + "/not-answered", data={"csrf": "0" * 32})
    assert forged.status_code == 422 and reports(system)[0]["status"] == "answered"
    sent = web.post(done.headers["Location"] + "/not-answered", data={"csrf": hidden(page, "csrf"), "note": "家里老人不会操作"})
    assert sent.status_code == 303 and reports(system)[0]["status"] == "submitted"
    stranger = client(system)                                               # no session, no report cookie
    assert stranger.post(done.headers["Location"] + "/not-answered",
                         data={"csrf": hidden(page, "csrf")}).status_code == 404
