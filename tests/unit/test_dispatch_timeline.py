"""Figures computed from a case's timeline (pure)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from services.dispatch.figures import figures
from shared.clock import iso


def test_figures_from_a_timeline():
    t0 = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)

    def at(minutes):
        return iso(t0 + timedelta(minutes=minutes))

    timeline = [
        {"at": at(0), "type": "reported", "actor": "resident"},
        {"at": at(0), "type": "assigned", "actor": "system", "level": "neighbourhood"},
        {"at": at(90), "type": "warned", "actor": "system", "level": "neighbourhood"},
        {"at": at(120), "type": "breached", "actor": "system", "level": "neighbourhood"},
        {"at": at(120), "type": "escalated", "actor": "system", "level": "group"},
        {"at": at(150), "type": "accepted", "actor": "彭立新", "level": "group"},
        {"at": at(160), "type": "supervised", "actor": "镇", "supervision_id": "s1"},
        {"at": at(170), "type": "supervised", "actor": "镇", "supervision_id": "s2"},
        {"at": at(175), "type": "supervision_answered", "actor": "彭立新", "supervision_id": "s1"},
        {"at": at(480), "type": "breached", "actor": "system", "level": "group"},
        {"at": at(480), "type": "escalated", "actor": "system", "level": "area"},
        {"at": at(500), "type": "escalated", "actor": "毛建华", "level": "village"},
        {"at": at(600), "type": "accepted", "actor": "韶山村", "level": "village"},
        {"at": at(720), "type": "resolved", "actor": "韶山村", "level": "village"},
    ]
    f = figures(timeline)
    assert f["time_to_accept"] == 150 * 60 and f["time_to_resolve"] == 720 * 60
    assert f["levels_climbed"] == 3 and f["escalated_by_breach"] == 2
    assert f["breaches"] == 2 and f["breaches_per_level"] == {"neighbourhood": 1, "group": 1}
    assert f["supervisions"] == 2 and f["supervisions_unanswered"] == 1 and f["warnings"] == 1
    assert f["resolved_at_level"] == "village"
    empty = figures([])
    assert empty["time_to_accept"] is None and empty["levels_climbed"] == 0
