"""Contact fields sealed in events and opened on load, masked copies left alone, secret rotation (pure)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from marshmallow import ValidationError

from shared import personal
from shared.events import load_event, make_event
from shared.domain.phones import FULL_NUMBER
from tests.support.runtime import SECRET


AT = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def sealing():
    personal.configure(SECRET)
    yield
    personal.configure(SECRET)


def submitted(phone="13912345678"):
    return make_event("report.submitted", "430382100", {
        "report_id": "r" * 32, "tracking_no": "ABCD2345", "category": "road", "tier": None,
        "description": "路面塌陷", "channel": "phone", "reporter_phone": phone,
        "submitted_at": "2026-11-02T01:00:00.000000Z"}, at=AT, correlation_id="r" * 32)


def test_make_event_seals_contact_fields_and_load_event_opens_them():
    event = submitted()
    wire = json.dumps(event, ensure_ascii=False)
    assert not FULL_NUMBER.search(wire)
    assert event["payload"]["reporter_phone"].startswith("sealed:v1:")
    assert load_event(json.loads(wire))["payload"]["reporter_phone"] == "13912345678"
    contacts = make_event("org.contacts_changed", "430382100", {"leads": [
        {"unit_id": "u-1", "name": "周桂香", "phone": "13800000003", "wecom_id": "zhougx"}]}, at=AT, correlation_id=None)
    assert not FULL_NUMBER.search(json.dumps(contacts))
    assert load_event(json.loads(json.dumps(contacts)))["payload"]["leads"][0]["phone"] == "13800000003"


def test_masked_copies_are_left_as_they_are():
    event = make_event("case.assigned", "430382100", {
        "case_id": "c", "report_id": "r", "tracking_no": "T", "category": "road", "tier": "general",
        "status": "assigned", "assignee": {"level": "neighbourhood", "unit_id": "u", "unit_name": "第1邻",
                                           "lead_name": "周桂香", "lead_phone_masked": "138****0003"}},
        at=AT, correlation_id="r")
    assert event["payload"]["assignee"]["lead_phone_masked"] == "138****0003"


def test_a_previous_secret_still_opens_messages_sealed_before_a_rotation():
    old = submitted()
    personal.configure("a-brand-new-secret-0123456789", previous=SECRET)
    assert load_event(json.loads(json.dumps(old)))["payload"]["reporter_phone"] == "13912345678"
    personal.configure("a-brand-new-secret-0123456789")
    with pytest.raises(ValidationError):
        load_event(json.loads(json.dumps(old)))  # poison for this consumer: dead-lettered, never guessed


def test_an_email_is_a_contact_field_like_a_phone():
    """An Open311 client's user's email (intake keeps it on the report): sealed should it ever travel."""
    assert personal.is_personal("reporter_email") and personal.is_personal("email")
    sealed = personal.seal_tree({"reporter_email": "alex@example.org", "note": "x"})
    assert sealed["reporter_email"].startswith("sealed:v1:") and sealed["note"] == "x"
    assert personal.open_tree(sealed)["reporter_email"] == "alex@example.org"


def _sealed_as_before(value):
    """The walk as first written (one call per value): the faster one must seal exactly the same."""
    if isinstance(value, dict):
        return {k: (("SEALED", v) if personal.is_personal(k) and isinstance(v, str) and v
                    and not v.startswith(personal.PREFIX) else _sealed_as_before(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_sealed_as_before(v) for v in value]
    return value


def test_the_walks_seal_and_open_exactly_what_the_simple_walk_did(monkeypatch):
    class Marking:  # seals visibly and deterministically, so the two walks can be compared
        def seal(self, value):
            return ("SEALED", value)

    tree = {"phone": "13912345678", "reporter_phone": "", "lead_phone_masked": "139****5678",
            "already_phone": personal.PREFIX + "x", "n": 3, "flag": None, "t": True,
            "leads": [{"phone": "13800000003", "name": "周桂香", "tags": ["phone", "13800000004"]},
                      "13800000005", 7, [{"email": "a@b.c"}]],
            "nested": {"wecom_openid": "o-1", "deeper": {"contact_email": "x@y.z", "list": []}}}
    monkeypatch.setattr(personal, "_sealer", Marking())
    assert personal.seal_tree(tree) == _sealed_as_before(tree)
    monkeypatch.setattr(personal, "_sealer", None)
    assert personal.seal_tree(tree) is tree  # no secret: nothing sealed, nothing copied


def test_open_tree_opens_sealed_values_under_keys_and_leaves_the_rest():
    event = submitted()
    opened = personal.open_tree({"payload": event["payload"], "list": [event["payload"], "x", 1],
                                 "in_list": [event["payload"]["reporter_phone"]]})
    assert opened["payload"]["reporter_phone"] == "13912345678"
    assert opened["list"][0]["reporter_phone"] == "13912345678" and opened["list"][1:] == ["x", 1]
    # A sealed string directly in a list is not a field: it was never sealed there, nor opened.
    assert opened["in_list"][0].startswith(personal.PREFIX)


def test_only_events_that_can_hold_a_contact_field_are_walked_for_sealing():
    from marshmallow import Schema, fields

    from shared import events

    def seals(type_):
        return events._seals(type_, events._schema(type_))
    for carrying in ("report.submitted", "org.contacts_changed", "signin.code_requested", "department.assigned"):
        assert seals(carrying), carrying
    for plain in ("case.assigned", "case.escalated", "sla.breached", "sla.warning", "report.rated"):
        assert not seals(plain), plain

    class Inner(Schema):
        note = fields.String()
        contact_phone = fields.String()

    class Free(Schema):
        extra = fields.Dict()

    class Deep(Schema):
        items = fields.List(fields.Nested(Inner))

    assert events._may_hold_personal(Deep()) and events._may_hold_personal(Free())
    assert not events._may_hold_personal(Inner(only=("note",)))


def test_a_case_event_built_without_the_walk_is_the_same_event():
    from shared.events import make_event

    payload = {"case_id": "c" * 32, "report_id": "r" * 32, "tracking_no": "ABCD2345", "category": "road",
               "tier": "general", "status": "assigned", "summary": "路面塌陷", "urgent": False,
               "assignee": {"level": "neighbourhood", "unit_id": "u-1", "unit_name": "第1邻", "lead_id": "u-1",
                            "lead_name": "周桂香", "lead_phone_masked": "138****0003"}}
    event = make_event("case.assigned", "430382100", payload, at=AT, correlation_id="r" * 32)
    assert event["payload"] == personal.seal_tree(event["payload"])  # nothing a walk would have sealed
    assert event["payload"]["assignee"]["lead_phone_masked"] == "138****0003"
