"""The pages people use, in a real headless Chromium at phone size (375×667) against the running
system (all four services over HTTP): the entry page, a resident's report with a photo shrunk in
the browser, the timeline in China time, rating (不满意 reopens), tracking by tracking number +
last four digits, the instant answer with "没有解决我的问题". Every page is checked with axe-core
(WCAG 2.x A/AA: no violations) and weighed on a first load (≤ 150 KB); bad input gets a Chinese
message next to the field and keeps what was typed.

``SANZHANG_PAGES_SCREENSHOTS=docs/pages`` writes the screenshots docs/pages.md shows.
Without chromium (or npm for axe-core) the test fails, saying what to install; it never skips."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from shared.runtime import SERVICES, Runtime
from shared.web import create_app
from tests.support.axe import axe_source, violations
from tests.support.cdp import missing, open_browser
from tests.support.dispatch import TOWNSHIP, case, holder, posts
from tests.support.pages import first_load, noisy_png, set_files
from tests.support.runtime import ADMIN_HEADERS, make_settings, token
from tests.support.signin import Phone

MAX_FIRST_LOAD = 150 * 1024
PHONE = "13973200001"


@pytest.fixture
def system(tmp_path, clock):
    # Plain http on 127.0.0.1 (the session cookie without Secure, as `make run`); messages carry short links.
    settings = make_settings(tmp_path, pages_townships=f"{TOWNSHIP}=清溪镇",
                             extra={"SANZHANG_COOKIE_SECURE": "0", "SANZHANG_NOTIFY_LINK_BASE": "https://qx.cn"})
    runtime = Runtime(settings, SERVICES, clock=clock).start()
    yield runtime
    runtime.stop()


@pytest.fixture
def axe():
    source = axe_source()
    if source is None:
        missing("axe-core (npm install axe-core)")
    return source


@pytest.fixture
def browser(tmp_path):
    b = open_browser(tmp_path / "profile", 375, 667, mobile=True)
    yield b
    b.close()


@pytest.fixture
def server(system):
    srv = make_server("127.0.0.1", 0, create_app(system), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(timeout=10)


class Checker:
    """Each page: weighed on a first load, axe-checked, readable at 375 px, photographed."""

    def __init__(self, browser, axe, tmp_path):
        self.browser, self.axe = browser, axe
        self.shots = Path(os.environ.get("SANZHANG_PAGES_SCREENSHOTS") or tmp_path)
        self.shots.mkdir(parents=True, exist_ok=True)
        self.weights = {}

    def open(self, name: str, url: str) -> None:
        weight = first_load(self.browser, url)
        assert weight["total"] <= MAX_FIRST_LOAD, (name, weight)
        assert all(n.startswith(url.split("/")[0] + "//" + url.split("/")[2]) for n, _ in weight["resources"]), \
            "everything from the system itself"
        self.weights[name] = weight["total"]
        print(f"first load of {name}: {weight['total']} bytes")
        self.check(name)

    def check(self, name: str) -> None:
        b = self.browser
        assert b.eval("document.documentElement.scrollWidth") <= 375, f"{name} is wider than the phone"
        found = violations(b, self.axe)
        assert found == [], f"{name}: {json.dumps(found, ensure_ascii=False)}"
        small = b.eval("[...document.querySelectorAll('button:not([hidden]), .btn, .roles a, input[type=text],"
                       " input[type=tel], textarea, .choice label, .radio')].filter(e => e.offsetParent)"
                       ".filter(e => e.getBoundingClientRect().height < 44).map(e => e.outerHTML.slice(0, 80))")
        assert small == [], f"{name}: touch targets under 44 px: {small}"
        b.screenshot(str(self.shots / f"{name}.png"))

    def submit(self, form_id: str) -> None:
        # The page now open is marked: loaded() waits for the page the form leads to, not this one.
        self.browser.eval(f"window.__stale = true; document.getElementById('{form_id}').requestSubmit(); true")


def loaded(browser, condition: str, timeout: float = 15):
    """Waits for the page a form led to: fully parsed, and ``condition`` true on it."""
    return browser.wait(f"!window.__stale && document.readyState === 'complete' && ({condition})", timeout)


def fill(browser, values: dict) -> None:
    for name, value in values.items():
        browser.eval(f"document.getElementById({json.dumps(name)}).value = {json.dumps(value)}; true")


def errors(browser) -> dict:
    return browser.eval("Object.fromEntries([...document.querySelectorAll('.error')].map(e => [e.id, e.textContent]))")


def test_a_resident_reports_with_a_photo_tracks_and_rates(system, demo, server, browser, axe, tmp_path):
    pages = Checker(browser, axe, tmp_path)
    pages.open("entry", f"{server}/")
    browser.eval("document.getElementById('role-resident').click(); true")
    loaded(browser, f"location.pathname === '/resident/{TOWNSHIP}/'")
    pages.check("resident-home")
    pages.open("report", f"{server}/resident/{TOWNSHIP}/report")

    # Bad input: a Chinese message next to each field, and what was typed kept.
    fill(browser, {"description": "门口路灯坏了一个星期，晚上出行不安全", "phone": "12345"})
    pages.submit("report-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    found = errors(browser)
    assert found == {"category-error": "请选择问题类别", "address-error": "请填写地址，例如：韶山村一组12号",
                     "phone-error": "手机号格式不正确，请填写11位手机号"}
    assert browser.eval("document.getElementById('description').value") == "门口路灯坏了一个星期，晚上出行不安全"
    assert browser.eval("document.getElementById('phone').value") == "12345"
    assert browser.eval("document.getElementById('phone').getAttribute('aria-describedby')") == "phone-hint phone-error"
    pages.check("report-errors")

    # A photo far over the 5 MB limit: shrunk in the browser, then accepted.
    photo = str(tmp_path / "photo.png")
    assert noisy_png(photo) > 5 * 1024 * 1024
    browser.eval("document.getElementById('cat-road').click(); true")
    fill(browser, {"address": "韶山村一组12号", "phone": PHONE})
    set_files(browser, "#photos", [photo])
    pages.submit("report-form")
    loaded(browser, "location.pathname.indexOf('/track/') > 0", timeout=30)
    assert system.drain()
    tracking = browser.eval("document.getElementById('tracking-no').textContent")
    report = system.service("intake").api["service"].find(tracking)
    assert (report["category"], report["address"], report["channel"]) == ("road", "韶山村一组12号", "web")
    (upload,) = report["uploads"]
    assert upload["content_type"] == "image/jpeg" and upload["size"] < 5 * 1024 * 1024
    browser.goto(browser.eval("location.href"))
    browser.wait("document.querySelector('.thumbs img') && document.querySelector('.thumbs img').complete")
    assert 0 < browser.eval("document.querySelector('.thumbs img').naturalWidth") <= 1600
    # The timeline in plain Chinese and China time (the fake clock: 01:00 UTC = 09:00 in Shaoshan).
    items = browser.eval("[...document.querySelectorAll('#timeline li')].map(li => li.textContent)")
    assert items[-1] == "11月2日 09:00您的诉求已受理" and any("已派给" in i for i in items)
    assert "已派单" in browser.eval("document.getElementById('status').textContent")
    pages.check("track")

    # The lead accepts and resolves; the resident rates: no choice first, then 不满意 with a comment.
    web = create_app(system).test_client()
    lead = holder(system, posts(system)["neighbourhood"])
    for action, body in (("accept", {}), ("resolve", {"note": "已修好路面"})):
        assert web.post(f"/api/v1/cases/{report['case_id']}/{action}", json=body, headers=lead).status_code == 200
    assert system.drain()
    browser.goto(browser.eval("location.href"))
    assert browser.eval("document.getElementById('status').textContent") == "已办结"
    pages.check("rate")
    fill(browser, {"comment": "路面还是坑坑洼洼"})
    pages.submit("rating-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert errors(browser) == {"rating-error": "请选择评价"}
    assert browser.eval("document.getElementById('comment').value") == "路面还是坑坑洼洼"
    browser.eval("document.querySelector('input[name=rating][value=\"不满意\"]').click(); true")
    pages.submit("rating-form")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert system.drain()
    rated = system.service("intake").api["service"].find(tracking)["ratings"][-1]
    assert (rated["rating"], rated["comment"]) == ("unsatisfied", "路面还是坑坑洼洼")
    assert case(system, report["case_id"])["status"] == "assigned"          # 不满意: back to be done again


def test_tracking_by_number_and_the_instant_answer(system, demo, server, browser, axe, tmp_path):
    pages = Checker(browser, axe, tmp_path)
    browser.goto(f"{server}/resident/{TOWNSHIP}/report")
    browser.eval("document.getElementById('cat-social').click(); true")
    fill(browser, {"description": "低保怎么申请", "address": "韶山村一组12号", "phone": PHONE})
    pages.submit("report-form")
    loaded(browser, "document.getElementById('answer') !== null")
    tracking = browser.eval("document.getElementById('tracking-no').textContent")
    assert browser.eval("document.getElementById('status').dataset.status") == "answered"
    pages.check("answer")

    # Another phone (no cookie): the tracking number and the last four digits open it.
    browser.call("Network.clearBrowserCookies")
    pages.open("track-form", f"{server}/resident/{TOWNSHIP}/track")
    fill(browser, {"tracking_no": tracking, "phone_last4": "9999"})
    pages.submit("track-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert errors(browser) == {"tracking_no-error": "查询码或手机号后四位不对，请核对后再试"}
    assert browser.eval("document.getElementById('tracking_no').value") == tracking
    pages.check("track-form-errors")
    fill(browser, {"phone_last4": PHONE[-4:]})
    pages.submit("track-form")
    loaded(browser, "document.getElementById('answer') !== null")

    # "没有解决我的问题": on to a person (a case for the 邻长).
    fill(browser, {"note": "我家情况特殊，想当面问问"})
    pages.submit("not-answered-form")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert system.drain()
    report = system.service("intake").api["service"].find(tracking)
    assert report["answer"]["declined_note"] == "我家情况特殊，想当面问问" and report["case_id"]
    browser.goto(browser.eval("location.href"))
    assert browser.eval("document.getElementById('answer')") is None
    assert "已派单" in browser.eval("document.getElementById('status').textContent")


def test_the_staff_start_page(system, demo, server, browser, axe, tmp_path):
    pages = Checker(browser, axe, tmp_path)
    pages.open("staff", f"{server}/staff/")
    assert browser.eval("[...document.querySelectorAll('.roles a')].map(a => a.getAttribute('href'))") == \
        [f"/board/{TOWNSHIP}", f"/staff/{TOWNSHIP}/cases"]


def test_township_staff_sign_in_and_supervise_reassign_recategorise(system, demo, server, browser, axe, tmp_path):
    pages = Checker(browser, axe, tmp_path)
    phone_box = Phone(system)
    web = create_app(system).test_client()
    assert system.drain()
    assert web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "李娟", "phone": "13700000002", "township": TOWNSHIP}).status_code == 201
    assert web.post("/api/v1/reports", headers=token(system, "client"), json={
        "township": TOWNSHIP, "category": "environment", "address": "韶山村一组12号",
        "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": PHONE, "channel": "mini_program"}).status_code == 201
    assert system.drain()

    browser.goto(f"{server}/staff/")
    browser.eval(f"window.__stale = true; document.getElementById('cases-{TOWNSHIP}').click(); true")
    sign_in(browser, system, phone_box, "13700000002")
    loaded(browser, f"location.pathname === '/staff/{TOWNSHIP}/cases'")
    assert browser.eval("document.getElementById('filter-assigned').querySelector('.count').dataset.count") == "1"
    pages.open("staff-cases", f"{server}/staff/{TOWNSHIP}/cases")
    browser.eval("window.__stale = true; document.querySelector('.case-link').click(); true")
    loaded(browser, "document.getElementById('supervise-form') !== null")
    case_id = browser.eval("location.pathname.split('/').pop()")
    pages.check("staff-case")

    fill(browser, {"supervise-note": "快"})
    pages.submit("supervise-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert errors(browser) == {"supervise-note-error": "请写2到500个字"}
    assert browser.eval("document.getElementById('supervise-note').value") == "快"
    pages.check("staff-case-errors")
    fill(browser, {"supervise-note": "请今天之内联系群众"})
    pages.submit("supervise-form")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert case(system, case_id)["supervisions"][-1]["note"] == "请今天之内联系群众"
    fill(browser, {"recategorise-category": "road"})
    pages.submit("recategorise-form")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert case(system, case_id)["category"] == "road"
    group = posts(system)["group"]
    fill(browser, {"reassign-unit": group["_id"]})
    pages.submit("reassign-form")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert case(system, case_id)["unit_id"] == group["_id"]
    assert "已改派" in browser.eval("document.querySelector('.notice').textContent")


def sign_in(browser, system, phone_box, phone: str) -> None:
    """On the sign-in page now open: the phone, then the code the 'phone' received."""
    loaded(browser, "document.querySelector('input[name=phone]') !== null")
    before = len(phone_box.messages)
    browser.eval(f"window.__stale = true; document.querySelector('input[name=phone]').value = {json.dumps(phone)};"
                 "document.querySelector('form').submit(); true")
    loaded(browser, "document.querySelector('input[name=sms_code]') !== null")
    code = phone_box.wait_for_code(phone, system, before)
    browser.eval(f"window.__stale = true; document.querySelector('input[name=sms_code]').value = {json.dumps(code)};"
                 "document.querySelector('form').submit(); true")


def test_a_lead_signs_in_accepts_reports_progress_and_resolves(system, demo, server, browser, axe, tmp_path):
    import re

    pages = Checker(browser, axe, tmp_path)
    phone_box = Phone(system)
    web = create_app(system).test_client()
    for description in ("门口路灯坏了一个星期，晚上出行不安全", "村口垃圾堆了三天没人清运"):
        assert web.post("/api/v1/reports", headers=token(system, "client"), json={
            "township": TOWNSHIP, "category": "environment", "address": "韶山村一组12号", "description": description,
            "reporter_phone": PHONE, "channel": "mini_program"}).status_code == 201
    assert system.drain()
    lead = posts(system)["neighbourhood"]["lead"]

    browser.goto(f"{server}/")
    browser.eval("document.getElementById('role-lead').click(); true")
    sign_in(browser, system, phone_box, lead["phone"])
    loaded(browser, "location.pathname === '/lead/'")
    counts = browser.eval("Object.fromEntries([...document.querySelectorAll('#boxes a')]"
                          ".map(a => [a.id, a.querySelector('.count').dataset.count]))")
    assert counts == {"box-assigned": "2", "box-accepted": "0", "box-due_soon": "0", "box-overdue": "0"}
    pages.open("lead-inbox", f"{server}/lead/")
    pages.open("lead-me", f"{server}/lead/me")
    assert browser.eval("document.getElementById('points').textContent") == "0"
    assert browser.eval("document.querySelectorAll('#households li').length") > 0     # the 邻长's households
    # One tap logs a visit to the first household.
    browser.eval("window.__stale = true; document.querySelector('.visit-form button[value=phone]').click(); true")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert "走访已记录" in browser.eval("document.querySelector('.notice').textContent")
    pages.check("lead-me-visit")
    assert system.service("dispatch").api["supervision"].visits.list(TOWNSHIP)[0]["mode"] == "phone"

    # The SMS short link lands on the case itself.
    log = web.get(f"/api/v1/deliveries?township={TOWNSHIP}", headers=ADMIN_HEADERS).json
    text = next(d["text"] for d in log if d["template_key"] == "case.assigned:assignee")
    link = re.search(r"https://qx\.cn(/l/[A-Z0-9]{8})", text).group(1)
    browser.goto(f"{server}{link}")
    loaded(browser, "location.pathname.indexOf('/lead/cases/') === 0")
    case_id = browser.eval("location.pathname.split('/').pop()")
    pages.check("lead-case")

    pages.submit("accept-form")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert browser.eval("document.getElementById('status').dataset.status") == "accepted"
    fill(browser, {"note": "好"})
    pages.submit("progress-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert errors(browser) == {"note-error": "请写2到500个字"}
    assert browser.eval("document.getElementById('note').value") == "好"
    pages.check("lead-case-errors")
    fill(browser, {"note": "已联系供电所，明天上午来换灯"})
    pages.submit("progress-form")
    loaded(browser, "document.querySelector('.notice') !== null")
    # 挂起 while waiting for the resident: no reason first (the message next to it), then one; then 恢复.
    fill(browser, {"pause-note": "请补充路灯的具体位置"})
    pages.submit("pause-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert errors(browser) == {"pause-reason-error": "请选择挂起原因"}
    assert browser.eval("document.getElementById('pause-note').value") == "请补充路灯的具体位置"
    browser.eval("document.getElementById('pause-reason-awaiting_resident').click(); true")
    pages.submit("pause-form")
    loaded(browser, "document.getElementById('resume-form') !== null")
    assert case(system, case_id)["pause"]["reason"] == "awaiting_resident"
    pages.check("lead-case-paused")
    pages.submit("resume-form")
    loaded(browser, "document.getElementById('pause-form') !== null && document.querySelector('.notice') !== null")
    assert not case(system, case_id).get("pause")
    fill(browser, {"resolve-note": "供电所已更换灯泡，路灯恢复照明"})
    pages.submit("resolve-form")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert browser.eval("document.getElementById('status').dataset.status") == "resolved"
    done = case(system, case_id)
    assert done["status"] == "resolved"
    assert [e["type"] for e in done["timeline"]][-5:] == ["accepted", "progress", "paused", "resumed", "resolved"]
    assert "供电所已更换灯泡" in browser.eval("document.getElementById('timeline').textContent")

    # The other case goes up a level: no reason first (the message next to it), then one.
    browser.goto(f"{server}/lead/")
    browser.eval(f"document.querySelector('.case-link:not([data-case-id=\"{case_id}\"])').click(); true")
    loaded(browser, "document.getElementById('escalate-form') !== null")
    other = browser.eval("location.pathname.split('/').pop()")
    fill(browser, {"escalate-note": "需要村里协调"})
    pages.submit("escalate-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert errors(browser) == {"reason-error": "请选择上交原因"}
    assert browser.eval("document.getElementById('escalate-note').value") == "需要村里协调"
    browser.eval("document.getElementById('reason-beyond_ability').click(); true")
    pages.submit("escalate-form")
    loaded(browser, "location.pathname === '/lead/' && document.querySelector('.notice') !== null")
    assert "已上交" in browser.eval("document.querySelector('.notice').textContent")
    assert case(system, other)["level"] == "group"
    assert browser.eval("document.querySelectorAll('.case-link').length") == 0   # no longer this lead's
    browser.goto(f"{server}/lead/me")                                           # points for the work just done
    assert system.drain()
    browser.goto(f"{server}/lead/me")
    assert browser.eval("document.querySelectorAll('#ledger li').length") > 0

    # 代办: from the workbench to intake's report page, filed with channel "lead".
    browser.goto(f"{server}/lead/")
    browser.eval("window.__stale = true; document.getElementById('go-report-for').click(); true")
    loaded(browser, "document.getElementById('proxy-note') !== null")
    pages.check("lead-report-for")
    browser.eval("document.getElementById('cat-water').click(); true")
    fill(browser, {"description": "独居老人家里水管漏水，老人不会用手机", "address": "韶山村一组12号"})
    pages.submit("report-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert list(errors(browser)) == ["phone-error"]
    assert browser.eval("document.getElementById('description').value") == "独居老人家里水管漏水，老人不会用手机"
    fill(browser, {"phone": "13973200002"})
    pages.submit("report-form")
    loaded(browser, "location.pathname.indexOf('/track/') > 0", timeout=30)
    filed = system.service("intake").api["reports"].collection.find({}, limit=100)
    assert [r["description"] for r in filed if r["channel"] == "lead"] == ["独居老人家里水管漏水，老人不会用手机"]


def test_a_department_clerk_signs_in_accepts_asks_for_time_and_signs_off(system, demo, server, browser, axe, tmp_path):
    from tests.support.escalation import dept_id, referred_event, setup_city

    pages = Checker(browser, axe, tmp_path)
    phone_box = Phone(system)
    web = create_app(system).test_client()
    depts = setup_city(web)
    clerk_phone = "13700000022"
    assert web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "department", "name": "住建局经办人", "phone": clerk_phone, "department_id": dept_id("zjj")}).status_code == 201
    case_id = "c" * 32
    system.service("escalation").api["service"].on_case_referred(referred_event(case_id))   # 住房物业: 住建局 leads

    browser.goto(f"{server}/")
    browser.eval("document.getElementById('role-department').click(); true")
    sign_in(browser, system, phone_box, clerk_phone)
    loaded(browser, "location.pathname === '/dept/'")
    counts = browser.eval("Object.fromEntries([...document.querySelectorAll('#boxes a')]"
                          ".map(a => [a.id, a.querySelector('.count').dataset.count]))")
    assert counts == {"box-assigned": "1", "box-accepted": "0", "box-done": "0"}
    pages.open("dept-cases", f"{server}/dept/")
    browser.eval("document.querySelector('.case-link').click(); true")
    loaded(browser, "document.getElementById('accept-form') !== null")
    assert "需要部门协调解决" in browser.eval("document.querySelector('.facts').textContent")
    pages.check("dept-case")
    pages.submit("accept-form")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert browser.eval("document.getElementById('status').dataset.status") == "accepted"

    # 申请延期 with a bad number: the message next to it, the reason kept; then a good one.
    fill(browser, {"extension-working_days": "99", "extension-reason": "需等待第三方鉴定报告"})
    pages.submit("extension-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert errors(browser) == {"extension-working_days-error": "延长1到60个工作日"}
    assert browser.eval("document.getElementById('extension-reason').value") == "需等待第三方鉴定报告"
    pages.check("dept-case-errors")
    fill(browser, {"extension-working_days": "5"})
    pages.submit("extension-form")
    loaded(browser, "document.querySelector('.notice') !== null")

    # 销号 waits for the co-departments' opinions: the refusal is shown; after them it goes through.
    fill(browser, {"sign_off-resolution": "已完成屋面防水维修，住户确认不再漏水"})
    pages.submit("sign_off-form")
    loaded(browser, "document.querySelector('.alert') !== null")
    assert browser.eval("document.getElementById('sign_off-resolution').value") == "已完成屋面防水维修，住户确认不再漏水"
    for short in ("dx", "mzj"):
        for action, body in (("accept", {}), ("part", {"note": "已配合完成检查"})):
            assert web.post(f"/api/v1/department/cases/{case_id}/{action}", json=body,
                            headers=depts[short]).status_code == 200
    pages.submit("sign_off-form")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert browser.eval("document.getElementById('status').dataset.status") == "signed_off"
    doc = system.service("escalation").api["referrals"].get(case_id)
    assert doc["status"] == "signed_off"
    assert [e["type"] for e in doc["timeline"]].count("extension_requested") == 1


def test_the_core_actions_work_without_scripts(system, demo, server, browser, tmp_path):
    """Scripts off (an old phone, a blocked script): reporting with a photo and rating are plain forms."""
    photo = str(tmp_path / "small.png")
    noisy_png(photo, width=64, height=48)
    browser.call("Emulation.setScriptExecutionDisabled", {"value": True})
    browser.goto(f"{server}/resident/{TOWNSHIP}/report")
    assert browser.eval("document.querySelector('[data-locate]').hidden")   # no location without scripts
    browser.eval("document.getElementById('cat-water').click(); true")
    fill(browser, {"description": "自来水停了两天了", "address": "韶山村一组12号", "phone": PHONE})
    set_files(browser, "#photos", [photo])
    browser.eval("window.__stale = true; document.getElementById('report-form').requestSubmit(); true")
    loaded(browser, "location.pathname.indexOf('/track/') > 0")
    assert system.drain()
    tracking = browser.eval("document.getElementById('tracking-no').textContent")
    report = system.service("intake").api["service"].find(tracking)
    assert report["category"] == "water" and report["uploads"][0]["content_type"] == "image/png"   # sent as it was
    web = create_app(system).test_client()
    lead = holder(system, posts(system)["neighbourhood"])
    for action, body in (("accept", {}), ("resolve", {"note": "水管已修好"})):
        assert web.post(f"/api/v1/cases/{report['case_id']}/{action}", json=body, headers=lead).status_code == 200
    assert system.drain()
    browser.goto(browser.eval("location.href"))
    browser.eval("document.querySelector('input[name=rating][value=\"满意\"]').click(); true")
    browser.eval("window.__stale = true; document.getElementById('rating-form').requestSubmit(); true")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert system.service("intake").api["service"].find(tracking)["ratings"][-1]["rating"] == "satisfied"


def test_a_lead_opens_the_sms_link_and_resolves_with_a_photo(system, demo, server, browser, axe, tmp_path):
    """The issue's proof: the SMS link, sign-in with the code, 接单, a photo with 办结 (first a bad file,
    said next to the field); without scripts the separate upload form does the same. The photos show
    on the case page and on the resident's track page."""
    import re

    pages = Checker(browser, axe, tmp_path)
    phone_box = Phone(system)
    web = create_app(system).test_client()
    made = web.post("/api/v1/reports", headers=token(system, "client"), json={
        "township": TOWNSHIP, "category": "environment", "address": "韶山村一组12号", "reporter_phone": PHONE,
        "description": "门口路灯坏了一个星期，晚上出行不安全", "channel": "mini_program",
        "location": {"lat": 27.915, "lng": 112.526}})
    assert made.status_code == 201 and system.drain()
    log = web.get(f"/api/v1/deliveries?township={TOWNSHIP}", headers=ADMIN_HEADERS).json
    text = next(d["text"] for d in log if d["template_key"] == "case.assigned:assignee")
    browser.goto(f"{server}{re.search(r'https://qx.cn(/l/[A-Z0-9]{8})', text).group(1)}")
    sign_in(browser, system, phone_box, posts(system)["neighbourhood"]["lead"]["phone"])
    loaded(browser, "location.pathname.indexOf('/lead/cases/') === 0")
    case_id = browser.eval("location.pathname.split('/').pop()")
    assert "北纬27.91500" in browser.eval("document.getElementById('location').textContent")
    pages.submit("accept-form")
    loaded(browser, "document.querySelector('.notice') !== null")

    # Without scripts: the plain upload form, answered by intake with the case page again.
    small = str(tmp_path / "small.png")
    noisy_png(small, width=64, height=48)
    browser.call("Emulation.setScriptExecutionDisabled", {"value": True})
    browser.goto(f"{server}/lead/cases/{case_id}")
    assert browser.eval("document.getElementById('photo-form').hidden") is False
    assert browser.eval("document.getElementById('resolve-photos').closest('.field').hidden") is True
    set_files(browser, "#photo-files", [small])
    browser.eval("window.__stale = true; document.getElementById('photo-form').requestSubmit(); true")
    loaded(browser, "document.querySelector('.notice') !== null")
    assert "照片已上传" in browser.eval("document.querySelector('.notice').textContent")
    browser.call("Emulation.setScriptExecutionDisabled", {"value": False})
    assert system.drain() and len(case(system, case_id)["photos"]) == 1

    # With scripts: 办结's own photo field. A file that is no photo is refused next to it, nothing sent.
    browser.goto(f"{server}/lead/cases/{case_id}")
    browser.wait("document.getElementById('photo-form').hidden === true")
    notes = str(tmp_path / "notes.jpg")
    Path(notes).write_bytes(b"<html>not a photo</html>")
    set_files(browser, "#resolve-photos", [notes])
    fill(browser, {"resolve-note": "已更换路灯灯泡，晚上恢复照明"})
    browser.eval("document.getElementById('resolve-form').requestSubmit(); true")
    browser.wait("document.getElementById('resolve-photos-error') !== null")
    assert browser.eval("document.getElementById('resolve-photos-error').textContent") == "只能上传照片（JPEG、PNG或WebP格式）"
    assert case(system, case_id)["status"] == "accepted"
    assert browser.eval("document.getElementById('resolve-note').value") == "已更换路灯灯泡，晚上恢复照明"
    pages.check("lead-case-photo-error")
    # A good photo with a note too short: 办结 is checked first and refused, the page says so next
    # to the note, and the photo was never sent — nothing kept, the case as it was.
    set_files(browser, "#resolve-photos", [small])
    fill(browser, {"resolve-note": "好"})
    pages.submit("resolve-form")
    loaded(browser, "document.getElementById('resolve-note-error') !== null")
    assert browser.eval("document.getElementById('resolve-note-error').textContent") == "请写2到500个字"
    assert browser.eval("document.getElementById('resolve-note').value") == "好"
    assert system.drain() and len(case(system, case_id)["photos"]) == 1 and case(system, case_id)["status"] == "accepted"
    report = system.service("intake").api["reports"].get(case(system, case_id)["report_id"])
    assert len(report["uploads"]) == 1
    fill(browser, {"resolve-note": "已更换路灯灯泡，晚上恢复照明"})
    big = str(tmp_path / "big.png")
    assert noisy_png(big) > 5 * 1024 * 1024                   # shrunk in the browser before it goes up
    set_files(browser, "#resolve-photos", [big])
    pages.submit("resolve-form")
    loaded(browser, "document.querySelector('.notice') !== null", timeout=30)
    assert browser.eval("document.getElementById('status').dataset.status") == "resolved"
    assert system.drain()
    photos = case(system, case_id)["photos"]
    assert [p["by"] for p in photos] == ["lead", "lead"]
    browser.goto(f"{server}/lead/cases/{case_id}")
    browser.wait("[...document.querySelectorAll('#photos img')].every(i => i.complete && i.naturalWidth > 0)")
    assert browser.eval("document.querySelectorAll('#photos img').length") == 2
    # 办结 names the photo it was sent with (kit.js, from intake's upload answer): 附照片1张, whatever
    # intake's clock says; the no-script upload before it is the case's, not this 办结's.
    resolved = [e for e in case(system, case_id)["timeline"] if e["type"] == "resolved"][-1]
    assert resolved["photos"] == [photos[1]["url"]]
    assert "办结，附照片1张" in browser.eval("document.getElementById('timeline').textContent")
    pages.check("lead-case-photos")

    # 回电: the case page's link opens intake's page with the resident's number and a tap-to-call link.
    browser.eval("document.getElementById('contact-resident').click(); true")
    loaded(browser, "document.getElementById('call') !== null")
    assert browser.eval("document.getElementById('call').getAttribute('href')") == f"tel:{PHONE}"
    pages.check("lead-contact")

    # The resident's track page shows the lead's photos.
    tracking = case(system, case_id)["tracking_no"]
    browser.goto(f"{server}/resident/{TOWNSHIP}/track?tracking_no={tracking}")
    fill(browser, {"phone_last4": PHONE[-4:]})
    pages.submit("track-form")
    loaded(browser, "document.getElementById('tracking-no') !== null")
    browser.wait("[...document.querySelectorAll('.thumbs img')].every(i => i.complete && i.naturalWidth > 0)")
    assert browser.eval("document.querySelectorAll('.thumbs img').length") == 2
