"""Supervision on a small, hand-computed dataset: five cases through the real intake → dispatch
path, leads' actions and SLA timers on an injected clock; the 三率 and counts per township,
village, level and lead checked against values worked out by hand; the points ledger against the
events that caused it (and their redelivery); cards against the rule set; the XLSX export."""
from __future__ import annotations

from services.dispatch.supervision.rollups import BUILT

import io
from datetime import timedelta

import openpyxl
import pytest

from services.dispatch.supervision.facts import lead_key
from shared.clock import iso
from shared.domain.ids import new_id
from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.dispatch import TOWNSHIP, api, case, holder, posts, submit, sweep
from tests.support.supervision import YINTIAN, act, rated, sup, unit_named


PERIOD = "from=2026-11-01&to=2026-11-30"


def figures(web, system, by=None):
    q = PERIOD + (f"&by={by}" if by else "")
    resp = web.get(f"/api/v1/townships/{TOWNSHIP}/figures?{q}", headers=token(system, "staff"))
    assert resp.status_code == 200, resp.json
    return resp.json


def test_township_figures_match_hand_computed_values(system, web, dataset):
    total = figures(web, system)["total"]
    expected = {
        "received": 5, "accept_decided": 4, "accepted_on_time": 3, "response_rate": 0.75,
        "resolved": 3, "resolve_rate": 0.6, "rated": 3, "satisfied": 2, "satisfaction_rate": 0.6667,
        "resolved_within_2d": 3, "within_2d_rate": 0.6,
        "overdue_now": 2,  # C's resolve (due t0+8h) and E's acceptance (t0+8h), nothing swept since
        "escalations": 2, "breaches": 1, "breaches_accept": 1, "breaches_resolve": 0,
        "accept_median_s": 1800, "accept_p90_s": 10800,  # 1800 1800 3600 10800
        "resolve_median_s": 3600, "resolve_p90_s": 5400,  # 3600 3600 5400
        "disputes_mediated": 1, "hazards_found": 1, "micro_services": 2,
    }
    assert {k: total[k] for k in expected} == expected


def test_figures_by_village_category_and_week(system, web, dataset):
    villages = {r["label"]: r for r in figures(web, system, "village")["rows"]}
    assert {k: v["received"] for k, v in villages.items()} == {"韶山村": 3, "银田村": 1, "未定位": 1}
    assert (villages["韶山村"]["resolved"], villages["韶山村"]["satisfaction_rate"]) == (3, 0.6667)
    assert villages["银田村"]["response_rate"] == 0.0 and villages["银田村"]["hazards_found"] == 1
    categories = {r["category"]: r["received"] for r in figures(web, system, "category")["rows"]}
    assert categories == {"environment": 2, "dispute": 1, "hazard": 1, "other": 1}
    weeks = figures(web, system, "week")["rows"]
    assert [(w["week"], w["received"]) for w in weeks] == [("2026-11-02", 5)]


def test_figures_by_level_and_lead_come_from_each_holders_stint(system, web, dataset):
    levels = {r["level"]: r for r in figures(web, system, "level")["rows"]}
    hood = levels["neighbourhood"]
    assert (hood["received"], hood["accept_decided"], hood["accepted_on_time"], hood["resolved"],
            hood["escalations"], hood["breached_away"], hood["breaches"]) == (4, 3, 2, 2, 1, 1, 1)
    group = levels["group"]
    assert (group["received"], group["accepted_on_time"], group["resolved"], group["breaches"]) == (2, 2, 1, 0)
    assert group["accept_median_s"] == 1800 and group["resolve_median_s"] == 3600  # D: 30 min, 60 min at 组
    assert levels["township"]["received"] == 1 and levels["township"]["overdue_now"] == 1
    leads = {r["lead_name"]: r for r in figures(web, system, "lead")["rows"]}
    assert set(leads) == {"周桂香", "彭立新", "胡秀兰", "文建平"}
    zhou = leads["周桂香"]
    assert (zhou["received"], zhou["accepted_on_time"], zhou["resolved"], zhou["escalations"], zhou["rated"],
            zhou["satisfied"]) == (3, 2, 2, 1, 2, 1)
    assert zhou["path"] == "韶山村/一片/一组/第1邻"
    assert (leads["胡秀兰"]["breaches"], leads["胡秀兰"]["response_rate"]) == (1, 0.0)
    assert (leads["彭立新"]["resolved"], leads["彭立新"]["satisfaction_rate"]) == (1, 1.0)


def test_derived_fields_live_on_the_case_document(system, dataset):
    c = case(system, dataset["ids"]["C"])
    assert (c["accepted_on_time"], c["breach_count"], c["escalations"], c["kind"], c["hazards_found"]) == (0, 1, 1, "hazard", 1)
    assert [h["level"] for h in c["holds"]] == ["neighbourhood", "group"]
    assert c["holds"][0]["outcome"] == "breach_escalated" and c["holds"][1]["accepted_on_time"] == 1
    assert c["week"] == "2026-11-02" and c["city"] == "430382" and c["village_id"]
    b = case(system, dataset["ids"]["B"])
    assert (b["resolved"], b["rated"], b["satisfied"], b["time_to_resolve_s"], b["disputes_mediated"]) == (1, 1, 0, 3600, 1)


def test_ledger_entries_trace_to_the_events_that_caused_them(system, web, dataset):
    entries = web.get(f"/api/v1/townships/{TOWNSHIP}/ledger?limit=100", headers=token(system, "staff")).json
    by_lead: dict[str, list] = {}
    for e in entries:
        by_lead.setdefault(e["lead_name"], []).append(e)
    assert sorted((e["rule"], e["points"]) for e in by_lead["周桂香"]) == sorted([
        ("accept_on_time", 1), ("accept_on_time", 1), ("resolve_on_time", 3), ("resolve_on_time", 3),
        ("rated_satisfied", 2), ("rated_unsatisfied", -3)])
    assert sorted(e["rule"] for e in by_lead["彭立新"]) == ["accept_on_time", "rated_satisfied", "resolve_on_time"]
    assert [(e["rule"], e["points"]) for e in by_lead["胡秀兰"]] == [("breach_accept", -2)]
    assert [e["rule"] for e in by_lead["文建平"]] == ["accept_on_time"]
    # Each entry names its cause: the case event (its id and type) and the case.
    ids = dataset["ids"]
    breach = by_lead["胡秀兰"][0]
    assert breach["cause_type"] == "sla.breached" and breach["case_id"] == ids["C"]
    unsatisfied = next(e for e in by_lead["周桂香"] if e["rule"] == "rated_unsatisfied")
    assert unsatisfied["cause"] == dataset["rated"]["B"]["id"] and unsatisfied["case_id"] == ids["B"]
    accepts = [e for e in by_lead["周桂香"] if e["rule"] == "accept_on_time"]
    assert {e["cause_type"] for e in accepts} == {"case.accepted"} and {e["case_id"] for e in accepts} == {ids["A"], ids["B"]}
    assert all(e["at"] == case(system, e["case_id"])["holds"][0]["accepted_at"] for e in accepts)

    # Redelivery never double-counts: the same rating event, and every case event, once more.
    projector = sup(system).projector
    projector.on_rated(dataset["rated"]["B"])
    for e in entries:
        if e["cause_type"].startswith(("case.", "sla.")):
            doc = case(system, e["case_id"])
            projector.on_case_event({"id": e["cause"], "type": e["cause_type"], "township": TOWNSHIP,
                                     "occurred_at": e["at"], "version": 1, "correlation_id": doc["report_id"],
                                     "payload": {"case_id": e["case_id"], "assignee": {
                                         "level": e["level"], "unit_id": e["unit_id"], "unit_name": e["unit_name"],
                                         "lead_name": e["lead_name"]}, "reason": e.get("note")}})
    again = web.get(f"/api/v1/townships/{TOWNSHIP}/ledger?limit=100", headers=token(system, "staff")).json
    assert sorted(e["_id"] for e in again) == sorted(e["_id"] for e in entries)

    standings = {s["lead_name"]: s for s in
                 web.get(f"/api/v1/townships/{TOWNSHIP}/standings?quarter=2026Q4", headers=token(system, "staff")).json}
    assert (standings["周桂香"]["points"], standings["彭立新"]["points"], standings["胡秀兰"]["points"],
            standings["文建平"]["points"]) == (7, 6, -2, 1)
    mine = web.get("/api/v1/my/ledger", headers=holder(system, dataset["posts"]["neighbourhood"])).json
    assert mine["points"] == 7 and len(mine["entries"]) == 6


def test_an_unanswered_supervision_costs_its_holder(system, web, dataset, clock):
    supervision = sup(system)
    clock.set(dataset["t0"] + timedelta(hours=3 + 24, minutes=1))
    assert supervision.sweep() >= 1
    entries = supervision.ledger.list(TOWNSHIP)
    late = [e for e in entries if e["rule"] == "supervision_unanswered"]
    assert [(e["lead_name"], e["points"], e["case_id"], e["cause_type"]) for e in late] == [
        ("文建平", -2, dataset["ids"]["C"], "case.supervised")]
    assert supervision.sweep() == 0  # the watch is gone; nothing more


def test_an_answered_supervision_costs_nothing(system, web, dataset, clock):
    c = case(system, dataset["ids"]["C"])
    sid = c["supervisions"][0]["id"]
    act(web, system, c["_id"], f"supervisions/{sid}/answer", dataset["yintian_group"], note="今天处理")
    clock.set(dataset["t0"] + timedelta(days=2))
    sup(system).sweep()
    assert not [e for e in sup(system).ledger.list(TOWNSHIP) if e["rule"] == "supervision_unanswered"]


def test_access_to_figures(system, web, dataset):
    url = f"/api/v1/townships/{TOWNSHIP}/figures?{PERIOD}"
    assert web.get(url).status_code == 401
    assert web.get(url, headers=token(system, "staff", townships=("430382101",))).status_code == 404
    assert web.get(url, headers=holder(system, dataset["posts"]["neighbourhood"])).status_code == 403
    assert web.get(url, headers=ADMIN_HEADERS).json["total"]["received"] == 5
    bad = web.get(f"/api/v1/townships/{TOWNSHIP}/figures?by=street", headers=token(system, "staff"))
    assert bad.status_code == 422 and "by" in bad.json["errors"]["query"]
    bad = web.get(f"/api/v1/townships/{TOWNSHIP}/figures?from=2026-12-01&to=2026-11-01", headers=token(system, "staff"))
    assert bad.status_code == 422
    city = web.get("/api/v1/cities/430382/figures?from=2026-11-01&to=2026-11-30", headers=ADMIN_HEADERS).json
    assert [(r["township"], r["received"]) for r in city["rows"]] == [(TOWNSHIP, 5)]


def test_xlsx_export_has_a_sheet_per_period_with_chinese_headers(system, web, dataset):
    resp = web.get(f"/api/v1/townships/{TOWNSHIP}/figures/export?from=2026-10-01&to=2026-11-30&by=village",
                   headers=token(system, "staff"))
    assert resp.status_code == 200 and resp.mimetype.endswith("spreadsheetml.sheet")
    wb = openpyxl.load_workbook(io.BytesIO(resp.data))
    assert wb.sheetnames == ["2026年10月", "2026年11月", "积分兑换"]   # 积分超市: test_supervision_exchanges.py
    ws = wb["2026年11月"]
    assert "清溪镇" in ws["A1"].value and "三长制" in ws["A1"].value
    headers = [c.value for c in ws[2]]
    assert headers[:6] == ["村(社区)", "收集问题(件)", "按时接单(件)", "响应率", "办结(件)", "解决率"]
    assert {"满意率", "2天解决率", "调解矛盾纠纷(件)", "排查安全隐患(个)", "提供微服务(件)"} <= set(headers)
    rows = {r[0]: dict(zip(headers[1:], r[1:])) for r in ws.iter_rows(min_row=3, values_only=True)}
    assert rows["合计"]["收集问题(件)"] == 5 and rows["合计"]["响应率"] == 0.75
    assert rows["合计"]["接单用时P90(小时)"] == 3.0 and rows["韶山村"]["提供微服务(件)"] == 2
    assert wb["2026年10月"]["A3"].value == "合计" and wb["2026年10月"]["B3"].value == 0
    same = web.get(f"/api/v1/townships/{TOWNSHIP}/figures?{PERIOD}&format=xlsx", headers=token(system, "staff"))
    assert same.status_code == 200 and openpyxl.load_workbook(io.BytesIO(same.data)).sheetnames == ["2026年11月", "积分兑换"]


def test_a_linked_raters_verdict_does_not_count_twice(system, web, dataset):
    before = len(sup(system).ledger.list(TOWNSHIP))
    doc = case(system, dataset["ids"]["A"])
    sup(system).projector.on_rated({
        "id": new_id(), "type": "report.rated", "township": TOWNSHIP, "occurred_at": iso(system.clock.now()),
        "version": 1, "correlation_id": doc["report_id"],
        "payload": {"case_id": doc["_id"], "report_id": "another-report", "rating": "unsatisfied",
                    "satisfied": False, "linked": True}})
    assert len(sup(system).ledger.list(TOWNSHIP)) == before and case(system, doc["_id"])["satisfied"] == 1


def test_figures_come_from_the_rollups_and_the_cli_rebuilds_them(system, web, dataset, monkeypatch, capsys):
    """Whole-day ranges are answered from the rollups (wiping them empties the answer); the
    rebuild command recomputes them from the cases and stints alone, and running it twice is harmless."""
    import json

    from shared.cli import main

    rollups = sup(system).rollups
    sup(system).sweep()   # the first build, asked for at start-up (until it ends, figures are scanned)
    assert rollups.built()
    before = figures(web, system, "level")
    for doc in rollups.docs.find():
        if doc["_id"] != BUILT:
            rollups.docs.delete(doc["_id"])
    wiped = figures(web, system)["total"]
    assert wiped["received"] == 0 and wiped["resolved"] == 0 and wiped["accept_median_s"] is None
    monkeypatch.setenv("SANZHANG_DATA_DIR", str(system.settings.data_dir))
    monkeypatch.setenv("SANZHANG_NAMESPACE", system.settings.namespace)
    for _ in range(2):
        assert main(["rebuild-figures"]) == 0
        assert json.loads(capsys.readouterr().out)["recomputed_days"] >= 2  # cases' day and stints' day
        assert figures(web, system, "level") == before
    assert figures(web, system)["total"]["received"] == 5
