"""The department desk's files and the lead's 我的积分与走访, in headless Chromium at 375×667 against the
running system (test_pages_browser.py's fixtures and checks: axe-core 0 violations, first load ≤ 150
KB, touch targets ≥ 44 px): a clerk signs off with a photo and the township staff's case page links
it; a lead records a visit with what was found and sees the quarter's card.

``SANZHANG_PAGES_SCREENSHOTS=docs/pages`` writes the screenshots docs/pages.md shows."""
from __future__ import annotations

from datetime import timedelta

from shared.clock import iso
from shared.web import create_app
from tests.e2e.test_pages_browser import Checker, axe, browser, errors, fill, loaded, server, sign_in, system  # noqa: F401
from tests.support.dispatch import TOWNSHIP, posts
from tests.support.escalation import dept_id, referred_case, setup_city
from tests.support.pages import noisy_png, set_files
from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.signin import Phone

CLERK = "13700000041"
STAFF = "13700000042"


def test_a_clerk_signs_off_with_a_photo_and_the_township_sees_it(system, demo, server, browser, axe, tmp_path):
    pages = Checker(browser, axe, tmp_path)
    phone_box = Phone(system)
    web = create_app(system).test_client()
    depts = setup_city(web)
    for kind, name, phone, extra in (("department", "住建局经办人", CLERK, {"department_id": dept_id("zjj")}),
                                     ("staff", "李娟", STAFF, {"township": TOWNSHIP})):
        assert web.post("/api/v1/accounts", headers=ADMIN_HEADERS,
                        json={"kind": kind, "name": name, "phone": phone, **extra}).status_code == 201
    case_id = referred_case(system, web, demo)
    report_link = "https://www.example.gov.cn/dx/inspection.pdf"   # a co-department's opinion with a link
    for short in ("dx", "mzj"):
        part = {"note": "已配合完成检查", **({"attachments": [report_link]} if short == "dx" else {})}
        for action, body in (("accept", {}), ("part", part)):
            assert web.post(f"/api/v1/department/cases/{case_id}/{action}", json=body,
                            headers=depts[short]).status_code == 200

    browser.goto(f"{server}/signin?next=/dept/cases/{case_id}")
    sign_in(browser, system, phone_box, CLERK)
    loaded(browser, "document.getElementById('accept-form') !== null")
    pages.submit("accept-form")
    loaded(browser, "document.getElementById('sign_off-form') !== null && document.querySelector('.notice') !== null")
    pages.check("dept-case-files")

    # A file that is not a photo or a PDF: the message next to the files field, the result kept.
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"GIF89a this is not a photo")
    fill(browser, {"sign_off-resolution": "已完成屋面防水维修，住户确认不再漏水"})
    set_files(browser, "#sign_off-files", [str(bad)])
    pages.submit("sign_off-form")
    loaded(browser, "document.querySelectorAll('.error').length > 0", timeout=30)
    assert errors(browser) == {"sign_off-files-error": "只能上传照片（JPEG、PNG、WebP）或PDF文件"}
    assert browser.eval("document.getElementById('sign_off-resolution').value") == "已完成屋面防水维修，住户确认不再漏水"
    pages.check("dept-case-files-errors")

    photo = str(tmp_path / "after-repair.png")
    noisy_png(photo, width=400, height=300)
    set_files(browser, "#sign_off-files", [photo])
    pages.submit("sign_off-form")
    loaded(browser, "document.querySelector('.notice') !== null", timeout=30)
    assert browser.eval("document.getElementById('status').dataset.status") == "signed_off"
    shown_on_desk = browser.eval("[...document.querySelectorAll('#timeline .attachments a')].map(a => a.getAttribute('href'))")
    links = [url for url in shown_on_desk if url != report_link]   # the desk's history lists the opinion's link too
    assert report_link in shown_on_desk and len(links) == 1 and links[0].startswith("/dept/files/")
    assert browser.eval(f"fetch({links[0]!r}).then(r => r.status + ' ' + r.headers.get('content-type'))") \
        in ("200 image/jpeg", "200 image/png")                    # shrunk to JPEG by the kit, or sent as it was
    assert system.drain()

    # The township's staff member signs in and finds the photo on the case.
    browser.call("Network.clearBrowserCookies")          # the clerk leaves; another person's phone
    browser.goto(f"{server}/signin?next=/staff/{TOWNSHIP}/cases/{case_id}")
    sign_in(browser, system, phone_box, STAFF)
    loaded(browser, "document.getElementById('department-files') !== null")
    shown = browser.eval("[...document.querySelectorAll('#department-files a')].map(a => a.getAttribute('href'))")
    assert shown == links + [report_link]   # the sign-off's photo, then the co-department's opinion's link
    assert browser.eval(f"fetch({links[0]!r}).then(r => r.status)") == 200
    pages.check("staff-case-files")


def test_a_lead_records_a_visit_with_findings_and_sees_the_card(system, demo, server, browser, axe, tmp_path):
    pages = Checker(browser, axe, tmp_path)
    phone_box = Phone(system)
    web = create_app(system).test_client()
    assert system.drain(15)
    staff = token(system, "staff", townships=(TOWNSHIP,))
    cards = web.post(f"/api/v1/townships/{TOWNSHIP}/reviews", json={"quarter": "2026Q4"}, headers=staff).json
    unit = posts(system)["neighbourhood"]
    mine = next(c for c in cards if c["unit_id"] == unit["_id"])
    assert web.post(f"/api/v1/townships/{TOWNSHIP}/cards/{mine['_id']}/decision",
                    json={"card": "blue", "note": "走访记录不全，请参加培训"}, headers=staff).status_code == 200

    browser.goto(f"{server}/signin?next=/lead/me")
    sign_in(browser, system, phone_box, unit["lead"]["phone"])
    loaded(browser, "document.getElementById('quarter-card') !== null")
    pages.open("lead-me-card", f"{server}/lead/me")
    assert browser.eval("document.getElementById('card').dataset.card") == "blue"
    assert "本季度（2026Q4）" in browser.eval("document.getElementById('quarter-points').textContent")

    browser.eval("document.querySelector('.visit-details summary').click(); true")
    fill(browser, {"visit-1-day": "yesterday", "visit-1-findings": "好"})
    pages.submit("visit-1")
    loaded(browser, "document.querySelectorAll('.error').length > 0")
    assert errors(browser) == {"visit-1-findings-error": "请写2到1000个字"}
    assert browser.eval("document.getElementById('visit-1-findings').value") == "好"
    assert browser.eval("document.getElementById('visit-1-day').value") == "yesterday"
    pages.check("lead-me-findings-errors")
    fill(browser, {"visit-1-findings": "老人身体好，家中水管漏水，已代办报修"})
    pages.submit("visit-1")
    loaded(browser, "document.querySelector('.notice') !== null")
    (visit,) = system.service("dispatch").api["supervision"].visits.list(TOWNSHIP)
    assert visit["findings"] == "老人身体好，家中水管漏水，已代办报修"
    assert visit["at"] == iso(system.clock.now() - timedelta(days=1)) and visit["mode"] == "in_person"
    pages.check("lead-me-findings")
