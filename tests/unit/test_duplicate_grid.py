"""The duplicate finder's grid (pure)."""
from __future__ import annotations

from services.intake.duplicates import cells_within, geo_cell, haversine_m


HERE = {"lat": 27.915, "lng": 112.527}


def north(metres: float) -> dict:
    return {"lat": HERE["lat"] + metres / 111_320.0, "lng": HERE["lng"]}


def test_the_grid_cells_cover_the_radius():
    assert round(haversine_m(HERE, north(200))) == 200
    for metres, bearing in ((199, (1, 0)), (199, (0, 1)), (199, (-0.7, 0.7)), (150, (0.7, -0.7))):
        lat = HERE["lat"] + bearing[0] * metres / 111_320.0
        lng = HERE["lng"] + bearing[1] * metres / (111_320.0 * 0.8838)
        assert geo_cell(lat, lng) in cells_within(HERE["lat"], HERE["lng"], 200)
    assert len(cells_within(70.0, 10.0, 200)) > len(cells_within(HERE["lat"], HERE["lng"], 200))  # narrower cells


def test_suggestions_are_read_a_page_at_a_time_past_reports_that_follow_others():
    from datetime import datetime, timedelta, timezone

    from services.intake.bootstrap import REPORT_INDEXES
    from services.intake.duplicates import LIMIT, PAGE, DuplicateFinder
    from shared.clock import iso
    from tests.support.fakes.memory_store import MemoryStore

    reports = MemoryStore().collection("reports", REPORT_INDEXES)
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    # the newest PAGE + 2 at the address follow another report; then three that can be suggested
    for i in range(PAGE + 5):
        reports.insert({"_id": f"r{i}", "tracking_no": f"T{i:05d}", "township": "430382100", "category": "environment",
                        "status": "submitted", "address_key": "韶山村一组1号", "description": "路灯坏了",
                        "submitted_at": iso(now - timedelta(minutes=i + 1)), "linked_to": "r99" if i < PAGE + 2 else None})
    new = {"_id": "new", "township": "430382100", "category": "environment", "address_key": "韶山村一组1号"}
    found = DuplicateFinder(reports).on_arrival(new, {"duplicate_window_days": 14, "duplicate_radius_m": 200}, now)
    assert [d["tracking_no"] for d in found] == [f"T{i:05d}" for i in range(PAGE + 2, PAGE + 5)]
    assert len(found) <= LIMIT
