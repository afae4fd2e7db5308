"""The Open311 updates feed's rules: one status table (open311_status.py) and the feed built from a
report's timeline (open311_updates.py). Over HTTP, as FixMyStreet polls it: tests/system/test_open311_fixmystreet.py."""
from __future__ import annotations

import pytest

from services.intake.open311_status import (
    REPORT_STATUS, STEP_STATUS, external_status_code, feed_step, open311_status,
)
from services.intake.open311_updates import update_id, updates_in
from services.intake.reports import STATUS_NAMES

# FixMyStreet's Open311::map_state: lower-case, "_" → " ", then its own table; anything else is kept.
FMS_MAP = {"fixed": "fixed - council", "not councils responsibility": "not responsible",
           "no further action": "unable to fix", "open": "confirmed", "closed": "closed"}
FMS_STATES = {"confirmed", "investigating", "in progress", "action scheduled", "fixed - council", "closed",
              "duplicate", "not responsible", "unable to fix", "internal referral"}


def fms_state(status: str) -> str:
    key = status.lower().replace("_", " ")
    return FMS_MAP.get(key, key)


@pytest.mark.parametrize("step,status", [
    ("case.assigned", "open"), ("case.accepted", "IN_PROGRESS"), ("case.progress", "IN_PROGRESS"),
    ("case.escalated", "INVESTIGATING"), ("case.referred", "ACTION_SCHEDULED"), ("case.resolved", "FIXED"),
    ("case.reopened", "open"), ("case.merged", "DUPLICATE"), ("linked", "DUPLICATE"), ("answered", "closed"),
])
def test_each_step_has_its_status(step, status):
    assert open311_status(step, "accepted") == status


def test_a_step_that_does_not_move_the_case_tells_the_reports_status():
    assert open311_status("case.supervised", "accepted") == "IN_PROGRESS"
    assert open311_status("case.supervised", "referred") == "ACTION_SCHEDULED"
    assert open311_status("case.updated", None) == "open"


def test_every_status_is_one_fixmystreet_knows():
    produced = {s for s in STEP_STATUS.values() if s} | set(REPORT_STATUS.values())
    assert {fms_state(s) for s in produced} <= FMS_STATES
    assert set(REPORT_STATUS) == set(STATUS_NAMES)   # every status of ours is mapped


def test_which_steps_are_in_the_feed():
    assert feed_step("case.escalated") and feed_step("linked")
    assert not feed_step("submitted") and not feed_step("rated")
    assert external_status_code("case.escalated") == "escalated" and external_status_code("linked") == "linked"


def report(**over) -> dict:
    doc = {"_id": "a" * 32, "tracking_no": "7KQ4M2XC", "status": "accepted", "timeline": [
        {"at": "2026-11-02T01:00:00.000000Z", "type": "submitted", "text": "您的诉求已受理"},
        {"at": "2026-11-02T01:00:01.000000Z", "type": "case.assigned", "text": "已派给第1邻邻长 周桂香",
         "event_id": "ev-assigned", "status": "assigned"},
        {"at": "2026-11-02T02:00:00.000000Z", "type": "case.accepted", "text": "第1邻邻长 周桂香 已接单",
         "event_id": "ev-accepted", "status": "accepted"},
        {"at": "2026-11-02T03:00:00.000000Z", "type": "rated", "text": "您评价：满意"},
    ]}
    doc.update(over)
    return doc


def test_the_feed_of_a_window_oldest_first_in_china_time():
    updates = updates_in([report()], "2026-11-02T00:00:00.000000Z", "2026-11-02T05:00:00.000000Z", 1000)
    assert [(u["status"], u["updated_datetime"], u["external_status_code"]) for u in updates] == [
        ("open", "2026-11-02T09:00:01+08:00", "assigned"), ("IN_PROGRESS", "2026-11-02T10:00:00+08:00", "accepted")]
    assert updates[1]["description"] == "第1邻邻长 周桂香 已接单"
    assert updates[1]["service_request_id"] == "7KQ4M2XC"
    narrow = updates_in([report()], "2026-11-02T01:30:00.000000Z", "2026-11-02T05:00:00.000000Z", 1000)
    assert [u["external_status_code"] for u in narrow] == ["accepted"]
    assert len(updates_in([report()], "2026-11-02T00:00:00.000000Z", "2026-11-03T00:00:00.000000Z", 1)) == 1


def test_update_ids_are_stable_and_differ_per_report_and_step():
    r = report()
    first = updates_in([r], "2026-11-02T00:00:00.000000Z", "2026-11-03T00:00:00.000000Z", 1000)
    again = updates_in([report(status="resolved")], "2026-11-02T00:00:00.000000Z", "2026-11-03T00:00:00.000000Z", 1000)
    assert [u["update_id"] for u in first] == [u["update_id"] for u in again]
    assert len({u["update_id"] for u in first}) == 2
    # the same case event reaching a report that follows the case is another update
    follower = report(_id="b" * 32, tracking_no="9PW3HJ6T")
    assert update_id(follower, r["timeline"][2]) != update_id(r, r["timeline"][2])
    # a step stored before event ids were kept still has a stable id
    old = {"at": "2026-11-02T02:00:00.000000Z", "type": "case.accepted", "text": "已接单"}
    assert update_id(r, old) == update_id(r, dict(old))


def test_the_description_is_masked():
    r = report(timeline=[{"at": "2026-11-02T02:00:00.000000Z", "type": "case.progress",
                          "text": "办理进展：请联系 13973200001", "event_id": "e", "status": "accepted"}])
    [u] = updates_in([r], "2026-11-02T00:00:00.000000Z", "2026-11-03T00:00:00.000000Z", 10)
    assert "13973200001" not in u["description"] and "139****0001" in u["description"]
