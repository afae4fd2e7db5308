"""Figure rules: lead keys and ratings (pure)."""
from __future__ import annotations

from services.dispatch.supervision.facts import lead_key


def test_lead_keys_follow_people_not_posts():
    assert lead_key("neighbourhood", "u1", "张三") != lead_key("neighbourhood", "u1", "李四")
    assert lead_key("department", "d1", "住建局") == "d1"


def test_ratings_are_read_from_the_resident_loops_payload():
    from services.dispatch.supervision.ledger import satisfaction_of

    assert satisfaction_of({"rating": "basically_satisfied", "satisfied": True}) is True
    assert satisfaction_of({"rating": "unsatisfied", "satisfied": False}) is False
    assert satisfaction_of({"rating": "unsatisfied"}) is False and satisfaction_of({"score": 4}) is True
    assert satisfaction_of({"outcome": "satisfied"}) is None  # follow-ups' verdicts travel as report.rated
