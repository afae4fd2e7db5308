"""我的积分与走访 over HTTP (no browser): the quarter's points and card (the township's review), and
记录走访情况 — what was found and a past day (今天/昨天/前天) — beside the one-tap buttons. Bad input
comes back next to the field with the text kept; a household outside the lead's post is 404."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from shared.clock import iso
from tests.support.dispatch import TOWNSHIP, posts
from tests.support.runtime import token
from tests.support.signin import csrf, sign_in_page


@pytest.fixture
def lead_web(system, web, demo):
    """The test client signed in through the pages as the demo path's 邻长 (the session cookie)."""
    assert system.drain(15)
    return sign_in_page(web, system, posts(system)["neighbourhood"]["lead"]["phone"], "/lead/", "10.0.0.8")


def visits(system) -> list[dict]:
    return system.service("dispatch").api["supervision"].visits.visits.find({}, limit=100)


def test_a_lead_records_what_a_visit_found_on_a_past_day(system, lead_web):
    page = lead_web.get("/lead/me").get_data(as_text=True)
    household = re.search(r'name="household_id" value="([^"]+)"', page).group(1)
    assert "记录走访情况" in page and "记录上门走访" in page                    # the one-tap buttons stay
    assert f'href="/resident/{TOWNSHIP}/report?for=lead"' in page                   # 代办 from a finding
    short = lead_web.post("/lead/me/visits", data={
        "csrf_token": csrf(lead_web), "household_id": household, "mode": "phone", "day": "yesterday", "findings": "好"})
    text = short.get_data(as_text=True)
    assert short.status_code == 422 and "请写2到1000个字" in text and "-findings-error" in text
    assert ">好</textarea>" in text and '<option value="yesterday" selected>' in text and "<details class=\"visit-details\" open>" in text
    far = lead_web.post("/lead/me/visits", data={
        "csrf_token": csrf(lead_web), "household_id": household, "mode": "phone", "day": "last_week", "findings": "老人身体好"})
    assert far.status_code == 422 and "请选择走访时间" in far.get_data(as_text=True)
    assert visits(system) == []

    done = lead_web.post("/lead/me/visits", data={
        "csrf_token": csrf(lead_web), "household_id": household, "mode": "phone", "day": "yesterday",
        "findings": "老人身体好，家中水管漏水，已代办报修"})
    assert done.status_code == 303 and done.headers["Location"].endswith("done=visit")
    (visit,) = visits(system)
    assert visit["findings"] == "老人身体好，家中水管漏水，已代办报修" and visit["mode"] == "phone"
    assert visit["at"] == iso(system.clock.now() - timedelta(days=1))
    one_tap = lead_web.post("/lead/me/visits", data={"csrf_token": csrf(lead_web), "household_id": household,
                                                     "mode": "wechat"})
    assert one_tap.status_code == 303 and len(visits(system)) == 2
    assert max(v["at"] for v in visits(system)) == iso(system.clock.now())
    assert lead_web.post("/lead/me/visits", data={"csrf_token": csrf(lead_web), "household_id": "hh-not-mine",
                                                  "mode": "phone", "findings": "发现问题"}).status_code == 404


def test_the_quarter_card_shows_once_the_township_reviewed(system, web, lead_web):
    page = lead_web.get("/lead/me").get_data(as_text=True)
    assert "本季度（2026Q4）" in page and "本季度尚未考核评定" in page
    staff = token(system, "staff", townships=(TOWNSHIP,))
    cards = web.post(f"/api/v1/townships/{TOWNSHIP}/reviews", json={"quarter": "2026Q4"}, headers=staff).json
    unit = posts(system)["neighbourhood"]["_id"]
    mine = next(c for c in cards if c["unit_id"] == unit)
    page = lead_web.get("/lead/me").get_data(as_text=True)
    assert f'data-card="{mine["proposed"]}"' in page and "镇(街道)待确认" in page
    decided = web.post(f"/api/v1/townships/{TOWNSHIP}/cards/{mine['_id']}/decision",
                       json={"card": "blue", "note": "走访记录不全，参加培训"}, headers=staff)
    assert decided.status_code == 200, decided.json
    page = lead_web.get("/lead/me").get_data(as_text=True)
    assert 'data-card="blue"' in page and "蓝牌" in page and "镇(街道)已调整" in page and "走访记录不全，参加培训" in page
