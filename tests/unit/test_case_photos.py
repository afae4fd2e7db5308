"""Photos on a case, the pure parts: report.photo_added's contract, the case's list (each address
once, bounded), how many photos a 办结 came with, the timeline's words, the case's location, and the
handler's idempotency over the in-memory case repository."""
from __future__ import annotations

import pytest
from marshmallow import ValidationError

from services.dispatch.case_photos import (MAX_LISTED, BeforeItsCase, add_photos, from_report, on_photo_added,
                                           on_supplemented, photo_entry, resolved_with, sent_field,
                                           sent_with)
from services.dispatch.cases import _location
from services.dispatch.web.timeline import timeline_items
from shared.aggregates import Aggregates
from datetime import datetime, timezone

from shared.clock import FakeClock
from shared.domain.ids import case_id_for
from shared.events import PAYLOADS, load_event, make_event
from tests.support.fakes.memory_store import MemoryStore

AT = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)
PAYLOAD = {"report_id": "r1", "tracking_no": "T1", "photo_id": "p1", "url": "/api/v1/photos/p1",
           "content_type": "image/jpeg", "by": "lead", "added_at": "2026-11-02T01:00:00.000000Z"}


def test_the_event_is_part_of_the_contract():
    assert "report.photo_added" in PAYLOADS
    event = load_event(make_event("report.photo_added", "430382100", PAYLOAD, at=AT, correlation_id="r1"))
    assert event["payload"]["by"] == "lead" and event["payload"].get("case_id") is None
    with pytest.raises(ValidationError):
        make_event("report.photo_added", "430382100", {**PAYLOAD, "by": "13800000001"}, at=AT, correlation_id=None)
    with pytest.raises(ValidationError):
        make_event("report.photo_added", "430382100", {k: v for k, v in PAYLOAD.items() if k != "url"},
                   at=AT, correlation_id=None)


def test_each_address_is_listed_once_and_the_list_is_bounded():
    case = {"photos": from_report({"photos": ["https://example.org/a.jpg"], "submitted_at": "t0"})}
    assert case["photos"] == [{"url": "https://example.org/a.jpg", "by": "resident", "at": "t0", "id": None}]
    assert add_photos(case, [photo_entry("/api/v1/photos/p1", "lead", "t1", "p1")]) is True
    assert add_photos(case, [photo_entry("/api/v1/photos/p1", "lead", "t2", "p1")]) is False
    many = [photo_entry(f"/api/v1/photos/x{i}", "resident", "t3") for i in range(MAX_LISTED + 5)]
    add_photos(case, many)
    assert len(case["photos"]) == MAX_LISTED


def test_a_banjie_counts_the_holders_photos_since_the_last_one():
    case = {"timeline": [{"at": "t1", "type": "accepted"}, {"at": "t3", "type": "resolved", "note": "已修好"},
                         {"at": "t4", "type": "reopened"}, {"at": "t6", "type": "resolved"}],
            "photos": [photo_entry("/a", "resident", "t0"), photo_entry("/b", "lead", "t2"),
                       photo_entry("/c", "lead", "t2"), photo_entry("/d", "lead", "t5"),
                       photo_entry("/e", "lead", "t7")]}   # after the last 办结: not counted
    assert resolved_with(case) == {1: 2, 3: 1}
    texts = [i["text"] for i in timeline_items(case)]
    assert texts == ["办结，附照片1张", "群众不满意，重新办理", "办结，附照片2张（已修好）", "接单"]
    assert resolved_with({"timeline": [{"at": "t1", "type": "resolved"}]}) == {0: 0}
    assert timeline_items({"timeline": [{"at": "t1", "type": "resolved"}]})[0]["text"] == "办结"


A1, A2, A3 = (f"/api/v1/photos/{c * 32}" for c in "abc")


def test_a_banjie_that_names_its_photos_counts_them_whatever_intakes_clock_says():
    """intake stamps a photo's ``at``, dispatch its 办结's: clocks apart by more than the gap between
    upload and 办结 put the photos in the wrong window, or in none. A 办结 that names its photos is
    counted by its own list."""
    timeline = [{"at": "2026-12-07T09:00:00+00:00", "type": "accepted"},
                {"at": "2026-12-07T10:00:00+00:00", "type": "resolved", "photos": [A1, A2]},
                {"at": "2026-12-07T11:00:00+00:00", "type": "reopened"},
                {"at": "2026-12-07T12:00:00+00:00", "type": "resolved", "photos": [A3]}]
    # intake's clock five minutes ahead: the first 办结's photos look newer than it (and older than
    # the 重新办理), the second's newer than the last 办结 — the time window counted 0 and 0.
    ahead = [photo_entry(A1, "lead", "2026-12-07T10:04:00+00:00"), photo_entry(A2, "lead", "2026-12-07T10:04:30+00:00"),
             photo_entry(A3, "lead", "2026-12-07T12:04:00+00:00")]
    assert resolved_with({"timeline": timeline, "photos": ahead}) == {1: 2, 3: 1}
    # intake's clock five hours behind: every photo looks older than the first 办结 (the window: 3 and 0).
    behind = [photo_entry(A1, "lead", "2026-12-07T05:00:00+00:00"), photo_entry(A2, "lead", "2026-12-07T05:00:30+00:00"),
              photo_entry(A3, "lead", "2026-12-07T07:00:00+00:00")]
    assert resolved_with({"timeline": timeline, "photos": behind}) == {1: 2, 3: 1}
    texts = [i["text"] for i in timeline_items({"timeline": timeline, "photos": behind})]
    assert texts[0] == "办结，附照片1张" and texts[2] == "办结，附照片2张"


def test_a_named_photo_dispatch_has_not_heard_of_yet_is_counted():
    """report.photo_added may reach dispatch after the 办结 the photo was sent with: the list counts,
    not its intersection with the case's photos."""
    case = {"timeline": [{"at": "t3", "type": "resolved", "photos": [A1, A2]}], "photos": [photo_entry(A1, "lead", "t2")]}
    assert resolved_with(case) == {0: 2}
    assert resolved_with({"timeline": [{"at": "t3", "type": "resolved", "photos": []}],
                          "photos": [photo_entry(A1, "lead", "t2")]}) == {0: 0}   # named none: none


def test_an_older_banjie_without_a_list_is_counted_by_time_leaving_out_the_named_ones():
    case = {"timeline": [{"at": "t3", "type": "resolved"}, {"at": "t4", "type": "reopened"},
                         {"at": "t6", "type": "resolved", "photos": [A2]}, {"at": "t7", "type": "reopened"},
                         {"at": "t9", "type": "resolved"}],
            # A2 was named by the second 办结 but intake's clock put it in the third's window
            "photos": [photo_entry(A1, "lead", "t2"), photo_entry(A2, "lead", "t8"), photo_entry(A3, "staff", "t8")]}
    assert resolved_with(case) == {0: 1, 2: 1, 4: 1}


def test_a_banjie_names_at_most_nine_photo_addresses_once_each():
    field = sent_field()
    assert sent_with([A1, A2, A1]) == [A1, A2] and sent_with(None) is None
    assert field.deserialize([A1, A2]) == [A1, A2]
    with pytest.raises(ValidationError, match="最多附9张"):
        field.deserialize([f"/api/v1/photos/{i:032x}" for i in range(10)])
    for bad in ("/api/v1/photos/p1", "https://evil.example/x.jpg", f"/api/v1/photos/{'a' * 32}/../x", ""):
        with pytest.raises(ValidationError, match="照片地址不正确"):
            field.deserialize([bad])


def test_a_location_is_two_numbers_or_nothing():
    assert _location({"lat": "27.9", "lng": 112.5}) == {"lat": 27.9, "lng": 112.5}
    assert _location({"lat": 27.9}) is None and _location(None) is None and _location({"lat": "x", "lng": 1}) is None


@pytest.fixture
def cases():
    return Aggregates(MemoryStore().collection("cases"), FakeClock(AT))


def test_the_handler_is_idempotent_and_waits_for_the_case(cases):
    clock = FakeClock(AT)
    event = load_event(make_event("report.photo_added", "430382100", PAYLOAD, at=AT, correlation_id="r1"))
    with pytest.raises(BeforeItsCase):
        on_photo_added(cases, clock, event)
    cases.add({"_id": case_id_for("r1"), "township": "430382100", "timeline": [], "photos": []})
    on_photo_added(cases, clock, event)
    on_photo_added(cases, clock, event)   # redelivered
    again = load_event(make_event("report.photo_added", "430382100", PAYLOAD, at=AT, correlation_id="r1"))
    on_photo_added(cases, clock, again)   # another event naming the same photo
    supplemented = load_event(make_event("report.supplemented", "430382100", {
        "report_id": "r1", "tracking_no": "T1", "text": "补充", "photos": ["/api/v1/photos/p1", "/api/v1/photos/p2"]},
        at=AT, correlation_id="r1"))
    on_supplemented(cases, clock, supplemented)
    on_supplemented(cases, clock, supplemented)
    assert [(p["url"], p["by"]) for p in cases.get(case_id_for("r1"))["photos"]] == [
        ("/api/v1/photos/p1", "lead"), ("/api/v1/photos/p2", "resident")]
