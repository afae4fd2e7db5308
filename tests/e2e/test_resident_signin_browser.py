"""A resident's SMS sign-in in a real headless Chromium at phone size (375×667) against the running
system: the phone form, the code texted to it (a wrong one first), "为我家反映" with a photo and the
verified phone shown masked, 我的反映, the report's timeline without a tracking code. Every page is
checked with axe-core (no violations), weighed on a first load (≤ 150 KB) and photographed
(``SANZHANG_PAGES_SCREENSHOTS=docs/pages``). Fails, never skips, without chromium or axe-core."""
from __future__ import annotations

from tests.e2e.test_pages_browser import Checker, axe, browser, errors, fill, loaded, server, system  # noqa: F401
from tests.support.dispatch import TOWNSHIP
from tests.support.pages import noisy_png, set_files
from tests.support.signin import Phone

PHONE = "13973200001"    # 韶山村一组 household on the demo roster


def test_a_resident_signs_in_reports_for_their_household_and_follows_it(system, demo, server, browser, axe,
                                                                       tmp_path):
    pages, phone_box = Checker(browser, axe, tmp_path), Phone(system)
    browser.goto(f"{server}/resident/{TOWNSHIP}/")
    browser.eval("document.getElementById('go-signin').click(); true")
    loaded(browser, "document.getElementById('signin-form') !== null")
    pages.open("resident-signin", f"{server}/resident/{TOWNSHIP}/signin?next=report")

    fill(browser, {"phone": "12345"})
    pages.submit("signin-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert errors(browser) == {"phone-error": "请填写11位手机号（1开头的11位数字），座机不能接收验证码"}
    assert browser.eval("document.getElementById('phone').value") == "12345"
    fill(browser, {"phone": PHONE})
    pages.submit("signin-form")
    loaded(browser, "document.getElementById('code-form') !== null")
    assert browser.eval("document.getElementById('masked-phone').textContent") == "139****0001"
    code = phone_box.wait_for_code(PHONE, system, 0)
    assert code
    pages.check("resident-signin-code")

    fill(browser, {"sms_code": "000000" if code != "000000" else "111111"})
    pages.submit("code-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert errors(browser)["sms_code-error"] == "验证码不正确，还可再试 4 次"
    pages.check("resident-signin-code-errors")
    fill(browser, {"sms_code": code})
    pages.submit("code-form")
    loaded(browser, "document.getElementById('report-form') !== null")
    assert PHONE not in browser.eval("document.cookie + location.href")     # HttpOnly, never in the URL

    # 为我家反映: the verified phone shown masked, no address, a photo shrunk in the browser.
    assert browser.eval("document.getElementById('where-home').checked")
    assert "139****0001" in browser.eval("document.getElementById('verified-phone').textContent")
    assert browser.eval("document.getElementById('phone')") is None
    pages.check("resident-report-household")
    photo = str(tmp_path / "photo.png")
    noisy_png(photo)
    browser.eval("document.getElementById('cat-environment').click(); true")
    fill(browser, {"description": "我家门口的垃圾三天没人收了"})
    set_files(browser, "#photos", [photo])
    pages.submit("report-form")
    loaded(browser, "location.pathname.indexOf('/track/') > 0", timeout=30)
    assert system.drain()
    tracking = browser.eval("document.getElementById('tracking-no').textContent")
    report = system.service("intake").api["service"].find(tracking)
    assert report["reporter_phone"] == PHONE and not report["address"] and len(report["uploads"]) == 1
    household = system.service("dispatch").api["org"].locate(TOWNSHIP, None, None, PHONE)
    case = system.service("dispatch").api["cases"].get(report["case_id"])
    assert case["neighbourhood_id"] == household["neighbourhood_id"]       # located by the phone

    # 我的反映 → the report's page and its timeline, no tracking code asked.
    pages.open("resident-mine", f"{server}/resident/{TOWNSHIP}/mine")
    rows = browser.eval("[...document.querySelectorAll('#mine a')].map(a => a.dataset.trackingNo)")
    assert rows == [tracking]
    browser.eval("document.querySelector('#mine a').click(); true")
    loaded(browser, "document.getElementById('timeline') !== null")
    items = browser.eval("[...document.querySelectorAll('#timeline li')].map(li => li.textContent)")
    assert items[-1] == "11月2日 09:00您的诉求已受理" and any("已派给" in i for i in items)
    assert browser.eval("document.getElementById('household').textContent") == "我家（按登记的电话定位）"
    pages.check("resident-track-signed-in")
