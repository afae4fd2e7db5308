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
