"""Likely duplicates (the same street light from five households): suggested as a report arrives, the
resident may follow the existing report, staff may merge cases; afterwards every reporter sees the
canonical case's progress and outcome. Nothing is merged without a resident's or staff's say."""
from __future__ import annotations

import pytest

from shared.domain.ids import case_id_for
from services.intake.duplicates import cells_within, geo_cell, haversine_m
from shared.cli import _load_demo
from tests.support.runtime import token
from tests.support.dispatch import holder, posts

TOWNSHIP = "430382100"
OTHER = "430382101"
LAMP = "门口路灯坏了一个星期，晚上出行不安全"
HERE = {"lat": 27.915, "lng": 112.527}


@pytest.fixture
def demo(system):
    system.service("dispatch").api["sweeper"].stop()
    return _load_demo(system)


def client(system, township=TOWNSHIP):
    return token(system, "client", townships=(township,))


def submit(web, system, *, address="韶山村一组12号", phone="13973200001", category="environment",
           description=LAMP, location=None, drain=True) -> dict:
    body = {"township": TOWNSHIP, "category": category, "description": description, "reporter_phone": phone,
            "channel": "mini_program", "address": address}
    if location:
        body["location"] = location
    resp = web.post("/api/v1/reports", json=body, headers=client(system))
    assert resp.status_code == 201, resp.json
    if drain:
        assert system.drain()
    return resp.json


def north(metres: float) -> dict:
    return {"lat": HERE["lat"] + metres / 111_320.0, "lng": HERE["lng"]}


def case(system, report_id):
    return system.service("dispatch").api["cases"].get(case_id_for(report_id))


def view(web, system, ref):
    return web.get(f"/api/v1/reports/{ref}", headers=client(system)).json


# -- geometry ------------------------------------------------------------------------------------------
# -- suggestions --------------------------------------------------------------------------------------------
def test_a_likely_duplicate_is_suggested_on_arrival(system, web, demo, clock):
    first = submit(web, system, location=HERE)
    assert first["possible_duplicates"] == []
    same_door = submit(web, system, phone="13973200002")
    [dup] = same_door["possible_duplicates"]
    assert dup == {"tracking_no": first["tracking_no"], "description": LAMP, "status": "assigned",
                   "submitted_at": dup["submitted_at"]}
    nearby = submit(web, system, address="韶山村二组3号", phone="13973200003", location=north(150))
    assert [d["tracking_no"] for d in nearby["possible_duplicates"]] == [first["tracking_no"]]
    assert nearby["possible_duplicates"][0]["distance_m"] == 150
    far = submit(web, system, address="银田村一组1号", phone="13973200004", location=north(320))
    assert first["tracking_no"] not in [d["tracking_no"] for d in far["possible_duplicates"]]
    other_kind = submit(web, system, category="water", description="自来水浑浊，已经三天了", phone="13973200005")
    assert other_kind["possible_duplicates"] == []
    # Nothing was merged: every report has its own case.
    assert all(case(system, r["id"])["status"] == "assigned" for r in (first, same_door, nearby, far, other_kind))
    clock.advance(days=15)
    late = submit(web, system, phone="13973200006")
    assert late["possible_duplicates"] == []                            # outside the 14-day window


def test_a_resolved_report_is_not_suggested(system, web, demo):
    first = submit(web, system)
    lead = holder(system, posts(system)["neighbourhood"])
    for action, body in (("accept", {}), ("resolve", {"note": "已修好"})):
        assert web.post(f"/api/v1/cases/{case_id_for(first['id'])}/{action}", json=body, headers=lead).status_code == 200
    assert system.drain()
    assert submit(web, system, phone="13973200002")["possible_duplicates"] == []


def test_the_same_neighbourhood_is_found_once_dispatch_has_placed_the_report(system, web, demo):
    first = submit(web, system, address="韶山村一组12号")
    second = submit(web, system, address="韶山村一组14号", phone="13973200002")
    assert second["possible_duplicates"] == []                          # different door, no location
    shown = view(web, system, second["id"])["possible_duplicates"]
    assert [d["tracking_no"] for d in shown] == [first["tracking_no"]]  # same 第1邻


# -- following ----------------------------------------------------------------------------------------------
def test_a_resident_follows_the_existing_report(system, web, demo):
    first = submit(web, system)
    second = submit(web, system, phone="13973200002")
    path = f"/api/v1/reports/{second['id']}/follow"
    assert web.post(path, json={"target": first["tracking_no"], "phone_last4": "0001"},
                    headers=client(system)).status_code == 404            # not second's reporter
    assert web.post(path, json={"target": first["tracking_no"], "phone_last4": "0002"},
                    headers=token(system, "staff")).status_code == 403
    bad = web.post(path, json={"target": second["tracking_no"], "phone_last4": "0002"}, headers=client(system))
    assert bad.status_code == 422 and "target" in bad.json["errors"]["json"]
    assert web.post(path, json={"target": "ZZZZ9999", "phone_last4": "0002"}, headers=client(system)).status_code == 422

    resp = web.post(path, json={"target": first["tracking_no"], "phone_last4": "0002"}, headers=client(system))
    assert resp.status_code == 200, resp.json
    assert resp.json["linked_to"]["tracking_no"] == first["tracking_no"]
    assert "关注诉求" in resp.json["timeline"][-1]["text"]
    again = web.post(path, json={"target": first["tracking_no"], "phone_last4": "0002"}, headers=client(system))
    assert again.status_code == 200                                       # the same answer again
    assert system.drain()

    merged = case(system, second["id"])
    assert merged["status"] == "merged" and merged["unit_id"] is None and merged["timer_due"] is None
    assert merged["merged_into"]["tracking_no"] == first["tracking_no"]
    canonical = case(system, first["id"])
    assert canonical["linked_report_ids"] == [second["id"]]
    assert view(web, system, first["id"])["followers"] == 1

    # The outcome reaches both reporters; each rates it.
    lead = holder(system, posts(system)["neighbourhood"])
    for action, body in (("accept", {}), ("progress", {"note": "已联系电工"}), ("resolve", {"note": "路灯已修好"})):
        assert web.post(f"/api/v1/cases/{canonical['_id']}/{action}", json=body, headers=lead).status_code == 200
    assert system.drain()
    for report in (first, second):
        v = view(web, system, report["id"])
        assert v["status"] == "resolved" and v["timeline"][-1]["text"] == "已办结：路灯已修好", report
        assert v["can_rate"] is True
    resp = web.post(f"/api/v1/reports/{second['id']}/rating", json={"rating": "满意", "phone_last4": "0002"},
                    headers=client(system))
    assert resp.status_code == 201
    assert web.post(f"/api/v1/reports/{first['id']}/rating", json={"rating": "满意", "phone_last4": "0001"},
                    headers=client(system)).status_code == 201


def test_a_closed_report_cannot_be_followed(system, web, demo):
    first = submit(web, system)
    lead = holder(system, posts(system)["neighbourhood"])
    second = submit(web, system, phone="13973200002")
    for action, body in (("accept", {}), ("resolve", {"note": "已修好"})):
        web.post(f"/api/v1/cases/{case_id_for(first['id'])}/{action}", json=body, headers=lead)
    assert system.drain()
    resp = web.post(f"/api/v1/reports/{second['id']}/follow", json={"target": first["tracking_no"], "phone_last4": "0002"},
                    headers=client(system))
    assert resp.status_code == 409


# -- merging by staff -----------------------------------------------------------------------------------------
def test_staff_merge_cases_and_every_reporter_hears_the_outcome(system, web, demo):
    reports = [submit(web, system, address=a, phone=f"1397320000{i + 1}")
               for i, a in enumerate(("韶山村一组12号", "韶山村一组14号", "韶山村一组15号"))]
    keep, *dups = [case_id_for(r["id"]) for r in reports]
    staff = token(system, "staff")
    lead = holder(system, posts(system)["neighbourhood"])
    url = f"/api/v1/cases/{dups[0]}/merge"
    assert web.post(url, json={"into": keep}, headers=lead).status_code == 403
    assert web.post(url, json={"into": keep}, headers=token(system, "staff", townships=(OTHER,))).status_code == 404
    bad = web.post(url, json={"into": dups[0]}, headers=staff)
    assert bad.status_code == 422 and "into" in bad.json["errors"]["json"]
    assert web.post(url, json={"into": "0" * 32}, headers=staff).status_code == 422
    assert web.post(url, json={"into": keep, "why": "x"}, headers=staff).status_code == 422

    resp = web.post(url, json={"into": keep, "note": "同一盏路灯"}, headers=staff)
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "merged" and "并入" in resp.json["timeline"][-1]["reason"]
    assert web.post(url, json={"into": keep}, headers=staff).status_code == 409        # merged already
    # Merging into a merged case lands on the case it was merged into.
    assert web.post(f"/api/v1/cases/{dups[1]}/merge", json={"into": dups[0]}, headers=staff).status_code == 200
    assert system.drain()
    assert case(system, reports[0]["id"])["linked_report_ids"] == [reports[1]["id"], reports[2]["id"]]
    assert case(system, reports[2]["id"])["merged_into"]["case_id"] == keep
    # The merged case left the lead's desk.
    mine = web.get("/api/v1/my/cases?show=all", headers=lead).json
    assert [c["id"] for c in mine] == [keep]

    for action, body in (("accept", {}), ("resolve", {"note": "路灯已修好"})):
        assert web.post(f"/api/v1/cases/{keep}/{action}", json=body, headers=lead).status_code == 200
    assert system.drain()
    for report in reports:
        v = view(web, system, report["id"])
        assert v["status"] == "resolved" and v["timeline"][-1]["text"] == "已办结：路灯已修好"
        if report is not reports[0]:
            assert v["linked_to"]["tracking_no"] == reports[0]["tracking_no"]
            assert any("合并办理" in t["text"] for t in v["timeline"])
    # A merged case cannot be worked on by its former holder.
    assert web.post(f"/api/v1/cases/{dups[0]}/accept", json={}, headers=lead).status_code == 404


def test_followers_of_a_follower_follow_the_canonical_report(system, web, demo):
    a = submit(web, system)
    b = submit(web, system, address="韶山村一组14号", phone="13973200002")
    c = submit(web, system, address="韶山村一组15号", phone="13973200003")
    follow = lambda who, target, last4: web.post(f"/api/v1/reports/{who['id']}/follow",  # noqa: E731
                                                 json={"target": target["tracking_no"], "phone_last4": last4},
                                                 headers=client(system))
    assert follow(c, b, "0003").status_code == 200
    assert system.drain()
    assert follow(b, a, "0002").status_code == 200
    assert system.drain()
    assert view(web, system, c["id"])["linked_to"]["tracking_no"] == a["tracking_no"]
    assert sorted(case(system, a["id"])["linked_report_ids"]) == sorted([b["id"], c["id"]])
    assert view(web, system, a["id"])["followers"] == 2 and view(web, system, b["id"])["followers"] == 0
    lead = holder(system, posts(system)["neighbourhood"])
    for action, body in (("accept", {}), ("resolve", {"note": "路灯已修好"})):
        assert web.post(f"/api/v1/cases/{case_id_for(a['id'])}/{action}", json=body, headers=lead).status_code == 200
    assert system.drain()
    assert [view(web, system, r["id"])["status"] for r in (a, b, c)] == ["resolved"] * 3
