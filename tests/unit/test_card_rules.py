"""Card rules: thresholds, and the cards a quarter's figures earn (pure)."""
from __future__ import annotations

from services.dispatch.supervision.cards import propose
from services.dispatch.supervision.rules import DEFAULT_RULES


def test_cards_follow_the_thresholds():
    thresholds = DEFAULT_RULES["cards"]
    base = {"points": 5, "rated": 0, "satisfaction_rate": None, "breaches": 0, "overdue_visits": 0}
    assert propose(base, thresholds) == ("none", [])
    assert propose({**base, "points": -1}, thresholds)[0] == "blue"
    assert propose({**base, "points": -6}, thresholds)[0] == "yellow"
    card, reasons = propose({**base, "points": -16, "breaches": 10}, thresholds)
    assert card == "red" and reasons == ["季度积分-16低于-15", "超时10次（≥10）"]
    # Satisfaction counts only with enough ratings behind it.
    assert propose({**base, "rated": 2, "satisfaction_rate": 0.0}, thresholds)[0] == "none"
    assert propose({**base, "rated": 3, "satisfaction_rate": 0.6}, thresholds)[0] == "yellow"
    assert propose({**base, "overdue_visits": 8}, thresholds)[0] == "red"
