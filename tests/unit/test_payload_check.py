"""make_event's and load_event's fast road through the contracts (shared/payload_check.py) agrees with
marshmallow, and a malformed payload built by the code is still refused before it can reach the outbox (pure)."""
from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import pytest
from marshmallow import ValidationError, fields, validate

from shared.events import _ENVELOPE, PAYLOADS, _schema, load_event, make_event
from shared.payload_check import FastLoader, compile_schema

AT = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)
ODD = [0, 3, -1, True, False, 1.5, "", "12", "x", b"x", {"k": 1}, [1], ("t",), None]


def _value(rng: random.Random, field: fields.Field, odd: float, depth: int = 0):
    """Mostly a value of the right kind (a choice from OneOf, nine digits for a township), sometimes an odd one."""
    if rng.random() < odd:
        return rng.choice(ODD)
    if isinstance(field, fields.Nested):
        return _payload(rng, field.schema, odd, depth + 1) if depth < 2 else {}
    if isinstance(field, fields.List):
        return [_value(rng, field.inner, odd, depth + 1) for _ in range(rng.randrange(3))]
    if isinstance(field, fields.Boolean):
        return rng.random() < 0.5
    if isinstance(field, fields.Integer):
        return rng.randrange(-5, 10**6)
    if isinstance(field, fields.Dict):
        return {rng.choice("abc"): rng.choice([1, "x", None]) for _ in range(rng.randrange(3))}
    choices = [c for v in field.validators if isinstance(v, validate.OneOf) for c in v.choices]
    if choices:
        return rng.choice(choices)
    return rng.choice(["430382100", "周桂香", " ", "a" * 9, "2026-11-02T01:00:00.000000Z"])


def _payload(rng: random.Random, schema, odd: float, depth: int = 0) -> dict:
    payload = {name: _value(rng, f, odd, depth) for name, f in schema.load_fields.items() if rng.random() < 0.9}
    if rng.random() < 0.3:
        payload["unknown"] = 1
    return payload


def _agrees(schema, rng: random.Random, rounds: int) -> int:
    """Random payloads through both roads: the fast one returns what marshmallow returns (same keys
    in the same order, same values) or steps aside; an error is always named by marshmallow. Returns
    how often the fast road answered."""
    fast_taken = 0
    for _ in range(rounds):
        payload = _payload(rng, schema, odd=rng.choice([0.0, 0.01, 0.1]))
        fast = FastLoader().load(schema, payload)
        try:
            expected = schema.load(payload)
        except ValidationError:
            assert fast is None
            continue
        if fast is not None:
            fast_taken += 1
            assert json.dumps(fast, ensure_ascii=False, default=repr) == json.dumps(expected, ensure_ascii=False,
                                                                                     default=repr)
    return fast_taken


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_the_fast_road_returns_what_marshmallow_returns_or_steps_aside(kind):
    assert _agrees(_schema(kind), random.Random(kind), 300)  # the comparison was not vacuous


def test_the_strict_envelope_s_fast_road_agrees_and_leaves_unknown_keys_to_marshmallow():
    # unknown keys (unknown=RAISE) and bad values are named by marshmallow
    assert _agrees(_ENVELOPE, random.Random("envelope"), 500)


def test_a_consumed_event_is_loaded_as_marshmallow_loads_it():
    event = make_event("case.escalated", "430382100", _case_payload(), at=AT, correlation_id="r" * 32)
    raw = json.loads(json.dumps(event, ensure_ascii=False))
    assert load_event(raw) == {**_ENVELOPE.load(raw), "payload": _schema("case.escalated").load(raw["payload"])}
    with pytest.raises(ValidationError) as caught:
        load_event({**raw, "smuggled": 1})
    assert "smuggled" in caught.value.messages


def test_every_contract_is_compiled_so_built_events_take_the_fast_road():
    assert all(compile_schema(_schema(kind)) is not None for kind in PAYLOADS)


def _case_payload(**changes):
    assignee = {"level": "group", "unit_id": "u-1", "unit_name": "一组", "lead_id": "l-1", "lead_name": "周桂香",
                "lead_phone_masked": "139****5678"}
    payload = {"case_id": "c" * 32, "report_id": "r" * 32, "tracking_no": "ABCD2345", "category": "road",
               "tier": "general", "status": "assigned", "assignee": assignee, "previous": None,
               "reason": "超时未接单", "actor": "system", "due_at": "2026-11-04T01:00:00.000000Z", "urgent": False}
    payload.update(changes)
    return payload


def test_a_built_case_event_is_loaded_on_the_fast_road_with_marshmallow_s_result():
    payload = _case_payload(smuggled="dropped")
    fast = FastLoader().load(_schema("case.escalated"), payload)
    assert fast is not None and fast == _schema("case.escalated").load(payload)
    assert "smuggled" not in fast and fast["assignee"] is not payload["assignee"]


@pytest.mark.parametrize("changes, field", [
    ({"tier": None}, "tier"),                                        # required, not nullable
    ({"status": 3}, "status"),                                       # wrong type
    ({"assignee": {"level": "mayor", "unit_id": None, "unit_name": "x"}}, "assignee"),  # OneOf refuses it
    ({"assignee": {"level": "group", "unit_id": "u-1"}}, "assignee"),  # nested required field missing
    ({"linked_report_ids": ["r1", 7]}, "linked_report_ids"),         # a list's element of the wrong type
])
def test_a_malformed_built_event_is_refused_naming_the_field(changes, field):
    payload = _case_payload(**changes)
    with pytest.raises(ValidationError) as caught:
        make_event("case.escalated", "430382100", payload, at=AT, correlation_id="r" * 32, caused_by="timer:x")
    assert field in caught.value.messages


def test_a_value_marshmallow_converts_takes_the_slow_road_and_is_converted():
    payload = _case_payload(resolution="2")  # text marshmallow turns into the number
    assert FastLoader().load(_schema("case.resolved"), payload) is None
    event = make_event("case.resolved", "430382100", payload, at=AT, correlation_id="r" * 32)
    assert event["payload"]["resolution"] == 2
