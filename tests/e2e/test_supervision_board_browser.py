"""The board in a real headless Chromium (Debian's ``chromium``): served by the system over HTTP, a
staff token entered once, the hand-computed figures of the small dataset on screen, a case's
timeline on click, and 督办 from the page taking effect on the case (read back through the API).

``SANZHANG_BOARD_SCREENSHOT=docs/board.png`` also writes the screenshot the README shows.
Without chromium the test is skipped on a developer's machine and fails under CI (CI=true)."""
from __future__ import annotations

import json
import os
import threading

import pytest
from werkzeug.serving import make_server

from shared.web import create_app
from tests.support.cdp import open_browser
from tests.support.runtime import token
from tests.support.dispatch import TOWNSHIP, case



@pytest.fixture
def browser(tmp_path):
    b = open_browser(tmp_path / "profile", 1280, 900)
    yield b
    b.close()


@pytest.fixture
def server(system):
    app = create_app(system)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(timeout=10)


def test_the_board_in_a_browser(system, web, dataset, server, browser, tmp_path):
    ids = dataset["ids"]
    staff = token(system, "staff", name="镇综治中心")["Authorization"][7:]
    # A review first, so the board has proposed cards to show.
    assert web.post(f"/api/v1/townships/{TOWNSHIP}/reviews", json={"quarter": "2026Q4"},
                    headers={"Authorization": f"Bearer {staff}"}).status_code == 201
    # 银田村's committee left without contacts: the board lists it under 无人可联系的岗位.
    for c in web.get(f"/api/v1/townships/{TOWNSHIP}/contacts", headers={"Authorization": f"Bearer {staff}"}).json:
        if c["unit_name"] == "银田村":
            assert web.delete(f"/api/v1/townships/{TOWNSHIP}/contacts/{c['id']}",
                              headers={"Authorization": f"Bearer {staff}"}).status_code == 204

    browser.goto(f"{server}/board/{TOWNSHIP}")
    assert browser.wait("!document.getElementById('login').hidden")  # asks for the token once
    browser.eval(f"document.getElementById('token').value = {json.dumps(staff)};"
                 "document.getElementById('login-form').requestSubmit(); true")
    browser.wait("document.getElementById('kpi-response') !== null")
    assert browser.eval("sessionStorage.getItem('sanzhang.board.token')") == staff

    kpis = browser.eval("Object.fromEntries([...document.querySelectorAll('.kpi')]"
                        ".map(k => [k.id, k.dataset.value]))")
    assert kpis == {"kpi-response": "75.0%", "kpi-resolve": "60.0%", "kpi-satisfaction": "66.7%",
                    "kpi-within2d": "60.0%", "kpi-received": "5", "kpi-open": "2", "kpi-overdue": "2",
                    "kpi-disputes": "1", "kpi-hazards": "1", "kpi-micro": "2",
                    "kpi-exchanges": "0", "kpi-paused": "0"}
    rows = browser.eval("[...document.querySelectorAll('#open-cases .case')].map(r => [r.dataset.caseId, r.className])")
    assert {r[0] for r in rows} == {ids["C"], ids["E"]} and all("overdue" in r[1] for r in rows)
    assert browser.eval("document.getElementById('paused').textContent") == "没有挂起的工单"
    assert browser.eval("document.querySelectorAll('#trend-chart svg polyline, #trend-chart svg circle').length") >= 3
    assert browser.eval("document.querySelectorAll('#level-chart svg rect').length") >= 2
    standings = browser.eval("Object.fromEntries([...document.querySelectorAll('#standings-table tr[data-lead]')]"
                             ".map(r => [r.dataset.lead, r.children[1].textContent]))")
    assert (standings["周桂香"], standings["彭立新"], standings["胡秀兰"]) == ("7", "6", "-2")
    assert "蓝牌" in browser.eval("document.getElementById('cards').textContent")
    assert "胡秀兰" in browser.eval("document.getElementById('cards').textContent")
    unreachable = browser.eval("[...document.querySelectorAll('#unreachable-table tr')].slice(1)"
                               ".map(r => r.textContent)")
    assert len(unreachable) == 1 and "银田村" in unreachable[0] and "未登记联系人" in unreachable[0]

    if os.environ.get("SANZHANG_BOARD_SCREENSHOT"):
        browser.screenshot(os.environ["SANZHANG_BOARD_SCREENSHOT"])

    # A case's full timeline on click, then 督办 from the drawer.
    browser.eval(f"document.querySelector('[data-case-id=\"{ids['C']}\"]').click(); true")
    browser.wait("document.querySelectorAll('#timeline li[data-type]').length > 0")
    types = browser.eval("[...document.querySelectorAll('#timeline li')].map(li => li.dataset.type)")
    assert types == [e["type"] for e in case(system, ids["C"])["timeline"]]
    assert "breached" in types and "escalated" in types
    browser.eval("document.getElementById('supervise-note').value = '看板督办：请今天内办结并答复';"
                 "document.getElementById('supervise-form').requestSubmit(); true")
    assert "已督办" in browser.wait("document.getElementById('supervise-result').textContent")
    detail = web.get(f"/api/v1/cases/{ids['C']}", headers={"Authorization": f"Bearer {staff}"}).json
    last = detail["timeline"][-1]
    assert (last["type"], last["note"], last["actor"]) == ("supervised", "看板督办：请今天内办结并答复", "镇综治中心")
    assert detail["unanswered_supervisions"] == 2
    browser.wait("document.querySelectorAll('#timeline li[data-type=\"supervised\"]').length === 2")

    # On a phone: one column, nothing wider than the screen.
    browser.call("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 2,
                                                        "mobile": True})
    browser.eval("document.getElementById('drawer').hidden = true; true")
    browser.wait("document.documentElement.scrollWidth <= 390")
    columns = browser.eval("getComputedStyle(document.querySelector('.grid')).gridTemplateColumns.split(' ').length")
    assert columns == 1
    browser.screenshot(str(tmp_path / "phone.png"))


def test_a_wrong_token_is_refused_on_the_page(system, demo, server, browser):
    browser.goto(f"{server}/board/{TOWNSHIP}")
    other = token(system, "staff", townships=("430382101",))["Authorization"][7:]
    browser.eval(f"document.getElementById('token').value = {json.dumps(other)};"
                 "document.getElementById('login-form').requestSubmit(); true")
    message = browser.wait("!document.getElementById('login-error').hidden && "
                           "document.getElementById('login-error').textContent")
    assert "令牌无效或无权" in message
    assert browser.eval("sessionStorage.getItem('sanzhang.board.token')") is None
