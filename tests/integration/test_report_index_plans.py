"""Every look-up for likely duplicates on arrival is answered by its place's own index on SQLite
(issue 16: 'same address, newest first' used to walk the whole category's 14-day window)."""
from __future__ import annotations

from datetime import datetime, timezone

from services.intake.bootstrap import REPORT_INDEXES
from services.intake.duplicates import DuplicateFinder
from services.intake.reports import new_report
from shared.storage.sqlite import SQLiteStore

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
PLACES = {f"ix_reports_township_category_{place}_submitted_at"
          for place in ("address_key", "household_id", "geo_cell", "landing_unit_id")}
SETTINGS = {"duplicate_window_days": 14, "duplicate_radius_m": 200}


def test_duplicate_lookups_use_the_place_indexes(tmp_path):
    store = SQLiteStore(tmp_path / "intake.db")
    coll = store.collection("reports", REPORT_INDEXES)
    body = {"township": "430382100", "address": "韶山村一组12号", "category": "environment", "household_id": "h1",
            "description": "路灯坏了", "channel": "mini_program", "location": {"lat": 27.9, "lng": 112.5}}
    for _ in range(3):
        coll.insert(new_report(body, NOW)[0])
    report = new_report(body, NOW)[0]
    statements: list[str] = []
    store.connection().set_trace_callback(statements.append)
    found = DuplicateFinder(coll).on_arrival(report, SETTINGS, NOW)
    store.connection().set_trace_callback(None)
    assert len(found) == 3
    selects = [s for s in statements if s.startswith("SELECT ") and " FROM \"c_reports\"" in s]
    assert len(selects) >= 3
    for sql in selects:
        plan = " ".join(row[-1] for row in store.connection().execute("EXPLAIN QUERY PLAN " + sql))
        used = plan.split("USING INDEX ")[1].split()[0]
        assert used in PLACES, plan
        assert "TEMP B-TREE" not in plan, plan  # the index gives the order too
