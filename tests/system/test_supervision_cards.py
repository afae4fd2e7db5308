"""The rule set (正负面清单) API, the quarterly review's cards against its thresholds, a red card
vacating the post (routing skips it, held cases move up) and the post filled again (动态补齐);
visits: weekly and monthly due times, overdue sweeps in the ledger, a visit that becomes a report;
the board's data."""
from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from shared.clock import iso, parse_iso

from services.dispatch.demo_roster import demo_roster_csv
from services.dispatch.supervision.cards import propose
from services.dispatch.supervision.rules import DEFAULT_RULES
from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.dispatch import TOWNSHIP, api, case, holder, posts, submit
from tests.support.supervision import YINTIAN, sup, unit_named


STAFF_NAME = "镇综治中心"


def staff(system):
    return token(system, "staff", name=STAFF_NAME)


def put_rules(web, system, rules, headers=None):
    return web.put(f"/api/v1/townships/{TOWNSHIP}/rules", json=rules, headers=headers or staff(system))


# -- the rule set -------------------------------------------------------------------------------

def test_rule_set_get_put_and_validation(system, web, demo):
    got = web.get(f"/api/v1/townships/{TOWNSHIP}/rules", headers=staff(system)).json
    assert got["is_default"] and {r["code"] for r in got["negative"]} >= {"breach_accept", "rated_unsatisfied",
                                                                          "supervision_unanswered", "visit_overdue"}
    rules = copy.deepcopy(DEFAULT_RULES)
    rules["positive"][0]["points"] = 2
    rules["positive"][0]["name"] = "当天接单"
    resp = put_rules(web, system, rules)
    assert resp.status_code == 200 and not resp.json["is_default"] and resp.json["changed_by"] == STAFF_NAME
    assert resp.json["positive"][0] == {"code": "accept_on_time", "name": "当天接单", "points": 2}
    for mutate, where in (
            (lambda r: r["positive"][0].update(points=-1), "positive"),      # a positive rule must add
            (lambda r: r["negative"][0].update(code="nap"), "negative"),     # an unknown code
            (lambda r: r["negative"].append(dict(r["negative"][0])), "negative"),  # twice
            (lambda r: r.update(extra=1), "extra"),
            (lambda r: r["cards"]["red"].update(satisfaction_below=2), "cards"),
            (lambda r: r.pop("supervision_answer_hours"), "supervision_answer_hours")):
        bad = copy.deepcopy(DEFAULT_RULES)
        mutate(bad)
        resp = put_rules(web, system, bad)
        assert resp.status_code == 422 and where in resp.json["errors"]["json"], (where, resp.json)
    assert put_rules(web, system, rules, token(system, "staff", townships=("430382101",))).status_code == 404
    assert put_rules(web, system, rules, holder(system, posts(system)["neighbourhood"])).status_code == 403
    assert put_rules(web, system, rules, ADMIN_HEADERS).status_code == 200


def review(web, system, quarter="2026Q4"):
    resp = web.post(f"/api/v1/townships/{TOWNSHIP}/reviews", json={"quarter": quarter}, headers=staff(system))
    assert resp.status_code == 201, resp.json
    return {c["lead_name"]: c for c in resp.json}


def test_quarterly_review_proposes_cards_and_a_red_card_vacates_the_post(system, web, dataset, clock):
    cards = review(web, system)
    assert cards["胡秀兰"]["proposed"] == "blue" and cards["胡秀兰"]["reasons"] == ["季度积分-2低于0"]
    assert cards["周桂香"]["proposed"] == "none" and cards["周桂香"]["figures"]["points"] == 7
    assert cards["周桂香"]["figures"]["rated"] == 2  # fewer than min_rated: satisfaction not judged
    # The township makes its list stricter; the review re-proposes what is not decided yet.
    rules = copy.deepcopy(DEFAULT_RULES)
    rules["cards"]["red"]["points_below"] = -1
    assert put_rules(web, system, rules).status_code == 200
    cards = review(web, system)
    hu = cards["胡秀兰"]
    assert hu["proposed"] == "red" and hu["status"] == "proposed"

    hood = unit_named(system, "neighbourhood", "第1邻", lead="胡秀兰")
    decided = web.post(f"/api/v1/townships/{TOWNSHIP}/cards/{hu['_id']}/decision",
                       json={"card": "red", "note": "多次超时"}, headers=staff(system))
    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "confirmed" and decided.json["vacated"]["post_vacated"] is True
    unit = api(system)["org"].unit(hood["_id"])
    assert unit["lead"] is None and unit["vacated"]["card_id"] == hu["_id"]
    again = web.post(f"/api/v1/townships/{TOWNSHIP}/cards/{hu['_id']}/decision", json={"card": "none"},
                     headers=staff(system))
    assert again.status_code == 409
    # Routing skips the vacant post: a new report from her neighbourhood goes to the group lead.
    new_case = case(system, submit(system, web, address=YINTIAN))
    assert new_case["assignee"]["lead_name"] == "文建平" and "岗位空缺" in new_case["timeline"][-1]["reason"]
    # A review after that leaves the removed lead out and keeps the decision.
    again = review(web, system)
    assert "胡秀兰" not in again or again["胡秀兰"]["final"] == "red"

    # A re-import that still names her keeps the post empty; naming someone new fills it.
    org = api(system)["org"]
    org.import_roster(TOWNSHIP, demo_roster_csv(), "demo.csv", actor="staff")
    assert org.unit(hood["_id"])["lead"] is None
    filled = web.put(f"/api/v1/townships/{TOWNSHIP}/units/{hood['_id']}/lead",
                     json={"name": "胡新邻", "phone": "13873109999"}, headers=staff(system))
    assert filled.status_code == 200 and filled.json["lead_name"] == "胡新邻"
    assert case(system, submit(system, web, address=YINTIAN))["assignee"]["lead_name"] == "胡新邻"
    bad = web.put(f"/api/v1/townships/{TOWNSHIP}/units/{hood['_id']}/lead", json={"name": "某", "phone": "123"},
                  headers=staff(system))
    assert bad.status_code == 422 and "phone" in bad.json["errors"]["json"]


def test_a_red_card_moves_the_cases_the_post_holds(system, web, dataset):
    p = dataset["posts"]
    held = submit(system, web)  # at 周桂香's 第1邻
    cards = review(web, system)
    zhou = cards["周桂香"]
    resp = web.post(f"/api/v1/townships/{TOWNSHIP}/cards/{zhou['_id']}/decision", json={"card": "red"},
                    headers=staff(system))
    assert resp.status_code == 200 and resp.json["status"] == "changed"  # proposed none, decided red
    assert resp.json["vacated"]["cases_moved"] == [held]
    doc = case(system, held)
    assert doc["unit_id"] == p["group"]["_id"] and doc["timeline"][-1]["reason"].startswith("岗位空缺")
    assert doc["timeline"][-1]["actor"] == STAFF_NAME


def test_other_cards_only_record_the_decision(system, web, dataset):
    cards = review(web, system)
    peng = cards["彭立新"]
    resp = web.post(f"/api/v1/townships/{TOWNSHIP}/cards/{peng['_id']}/decision", json={"card": "yellow"},
                    headers=staff(system))
    assert resp.json["final_name"] == "黄牌" and "vacated" not in resp.json
    assert api(system)["org"].unit(peng["unit_id"])["lead"]["name"] == "彭立新"
    listed = web.get(f"/api/v1/townships/{TOWNSHIP}/cards?quarter=2026Q4", headers=staff(system)).json
    assert listed[0]["final"] == "yellow"  # decided cards sort by severity
    assert web.post(f"/api/v1/townships/430382101/cards/{peng['_id']}/decision", json={"card": "red"},
                    headers=token(system, "staff", townships=("430382101",))).status_code == 404


# -- visits -------------------------------------------------------------------------------------

def household(system, address):
    from shared.domain.addresses import normalise_address

    return api(system)["org"].households.find({"township": TOWNSHIP, "address_key": normalise_address(address)})[0]


def key_due_after(at: str) -> str:
    return iso(parse_iso(at) + timedelta(days=7))


def test_visits_keep_key_households_weekly_and_count_in_the_ledger(system, web, demo, clock):
    supervision = sup(system)
    for s in supervision.sweepers:
        s.stop()
    t0 = clock.now()
    p = posts(system)
    lead = holder(system, p["neighbourhood"])
    key = household(system, "韶山村一组12号")  # 毛德生, a key household
    assert key["key_household"] and key["visit_due"] == (t0 + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    clock.set(t0 + timedelta(days=1))
    resp = web.post("/api/v1/visits", json={"household_id": key["_id"], "mode": "in_person",
                                            "findings": "老人身体好"}, headers=lead)
    assert resp.status_code == 201 and resp.json["on_time"] is True
    other_lead = holder(system, unit_named(system, "neighbourhood", "第2邻", lead="李春生"))
    assert web.post("/api/v1/visits", json={"household_id": key["_id"], "mode": "phone"},
                    headers=other_lead).status_code == 404
    bad = web.post("/api/v1/visits", json={"household_id": key["_id"], "mode": "letter"}, headers=lead)
    assert bad.status_code == 422 and "mode" in bad.json["errors"]["json"]
    assert [e["rule"] for e in supervision.ledger.list(TOWNSHIP)] == ["visit_logged"]
    mine = web.get("/api/v1/my/households", headers=lead).json
    assert mine[0]["household_id"] == key["_id"] and mine[0]["visit_due"] > resp.json["at"]

    # A week after the visit, none since: overdue, on the board, one deduction per missed week.
    clock.set(t0 + timedelta(days=8, minutes=1))
    supervision.sweep()
    overdue = web.get(f"/api/v1/townships/{TOWNSHIP}/visits/overdue", headers=staff(system)).json
    # Every key household is a week overdue (first due a week after the import) — and 毛德生, visited, is too.
    keys = [h for h in api(system)["org"].households.find({"township": TOWNSHIP}) if h["key_household"]]
    assert {o["household_id"] for o in overdue} == {h["_id"] for h in keys} and all(o["key_household"] for o in overdue)
    mine = next(o for o in overdue if o["household_id"] == key["_id"])
    assert (mine["head"], mine["lead_name"], mine["overdue_since"]) == ("毛德生", "周桂香", key_due_after(resp.json["at"]))
    supervision.sweep()
    clock.set(t0 + timedelta(days=15, minutes=2))
    supervision.sweep()
    misses = [e for e in supervision.ledger.list(TOWNSHIP) if e["rule"] == "visit_overdue" and e["lead_name"] == "周桂香"]
    assert [e["points"] for e in misses] == [-1, -1] and len({e["cause"] for e in misses}) == 2
    assert all(key["_id"] in e["cause"] for e in misses)
    # Visiting clears it.
    web.post("/api/v1/visits", json={"household_id": key["_id"], "mode": "wechat"}, headers=lead)
    overdue = web.get(f"/api/v1/townships/{TOWNSHIP}/visits/overdue", headers=staff(system)).json
    assert key["_id"] not in {o["household_id"] for o in overdue}
    # The other households are due monthly (and 毛德生 is due again a week after that last visit).
    clock.set(t0 + timedelta(days=30, minutes=5))
    supervision.sweep()
    overdue = web.get(f"/api/v1/townships/{TOWNSHIP}/visits/overdue", headers=staff(system)).json
    assert len(overdue) == len(api(system)["org"].households.find({"township": TOWNSHIP}))
    since = {o["household_id"]: o["overdue_since"] for o in overdue}
    assert since[key["_id"]] == key_due_after(iso(t0 + timedelta(days=15, minutes=2)))
    assert {v for k, v in since.items() if k not in {h["_id"] for h in keys}} == {iso(t0 + timedelta(days=30))}


def test_a_visit_becomes_a_report_through_intake(system, web, demo, clock):
    p = posts(system)
    lead = holder(system, p["neighbourhood"])
    hh = household(system, "韶山村一组15号")
    report = web.post("/api/v1/reports", json={
        "township": TOWNSHIP, "household_id": hh["_id"], "category": "water", "channel": "lead",
        "description": "走访发现住户家门口排水沟堵塞", "reporter_phone": "13800000009"}, headers=lead)
    assert report.status_code == 201, report.json
    assert system.drain()
    visit = web.post("/api/v1/visits", json={"household_id": hh["_id"], "mode": "in_person",
                                             "findings": "排水沟堵塞，已代为上报", "report_id": report.json["id"]},
                     headers=lead)
    assert visit.status_code == 201
    doc = case(system, visit.json["case_id"])
    assert doc["report_id"] == report.json["id"] and doc["unit_id"] == p["neighbourhood"]["_id"]
    assert doc["timeline"][0]["channel"] == "lead"
    listed = web.get(f"/api/v1/townships/{TOWNSHIP}/visits?household_id={hh['_id']}", headers=staff(system)).json
    assert [v["case_id"] for v in listed] == [doc["_id"]]


# -- the board's data ---------------------------------------------------------------------------

def test_board_data_orders_overdue_and_warned_cases_first(system, web, dataset):
    fresh = submit(system, web)  # on time: after the two overdue ones, though newer
    data = web.get(f"/api/v1/townships/{TOWNSHIP}/board", headers=staff(system)).json
    assert data["name"] == "清溪镇" and data["quarter"] == "2026Q4"
    assert (data["open_total"], data["open_overdue"], data["open_due_soon"]) == (3, 2, 0)
    order = [c["id"] for c in data["open_cases"]]
    assert set(order[:2]) == {dataset["ids"]["C"], dataset["ids"]["E"]} and order[2] == fresh
    assert [c["timing"] for c in data["open_cases"]] == ["overdue", "overdue", "on_time"]
    levels = {r["level"]: r for r in data["open_by_level"]}
    assert (levels["group"]["total"], levels["township"]["total"], levels["neighbourhood"]["total"]) == (1, 1, 1)
    assert levels["group"]["overdue"] == 1 and levels["neighbourhood"]["1天内"] == 1
    assert data["figures"]["received"] == 6 and data["figures"]["response_rate"] == 0.75
    assert [w["week"] for w in data["weekly"]] == ["2026-11-02"]
    assert {s["lead_name"]: s["points"] for s in data["standings"]}["周桂香"] == 7
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/board", headers=token(system, "client")).status_code == 403


def test_board_page_is_served(system, web):
    page = web.get(f"/board/{TOWNSHIP}")
    assert page.status_code == 200 and "三长制督办看板" in page.get_data(as_text=True)
    assert TOWNSHIP in page.get_data(as_text=True)
    assert web.get("/board/static/board.js").status_code == 200
    assert web.get("/board/static/board.css").status_code == 200
    assert web.get("/board/12").status_code == 404
    assert web.get("/board/static/../api.py").status_code == 404


@pytest.mark.parametrize("quarter", ["2026Q5", "26Q1"])
def test_review_rejects_a_malformed_quarter(system, web, demo, quarter):
    resp = web.post(f"/api/v1/townships/{TOWNSHIP}/reviews", json={"quarter": quarter}, headers=staff(system))
    assert resp.status_code == 422 and "quarter" in resp.json["errors"]["json"]
