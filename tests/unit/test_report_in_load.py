"""ReportIn's plain road (schemas.ReportIn._plain_load) must return exactly what marshmallow's load
returns for every report it takes, and leave every other one to marshmallow, which names the error."""
from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError

from services.intake.schemas import ReportIn
from shared.domain.phones import normalise

GOOD = {"township": "430382100", "address": "韶山村一组1号", "category": "environment", "channel": "mini_program",
        "description": "门口路灯坏了一个星期", "reporter_phone": "13800000001"}

VARIANTS = [
    {},
    {"household_id": "h-1", "reporter_name": "张三", "urgent": True},
    {"urgent": "yes"},                                    # marshmallow converts it
    {"urgent": 1},
    {"photos": ["https://example.org/a.jpg"]},
    {"photos": []},
    {"photos": ["ftp://example.org/a.jpg"]},
    {"photos": ["https://x/%d.jpg" % i for i in range(10)]},
    {"location": {"lat": 27.9, "lng": 112.5}},
    {"location": {"lat": "27.9", "lng": 112}},
    {"location": {"lat": 95, "lng": 112.5}},
    {"location": {"lat": 27.9}},
    {"location": {"lat": 27.9, "lng": 112.5, "alt": 3}},
    {"reporter_phone": "0731-5555 1234"},
    {"reporter_phone": "138 0000 0001"},
    {"reporter_phone": "12"},
    {"reporter_phone": None},
    {"township": "43038210"},
    {"township": 430382100},
    {"category": "nope"},
    {"channel": "fax"},
    {"description": "短"},
    {"description": "x" * 2001},
    {"address": "a"},
    {"address": None},
    {"reporter_name": ""},
    {"household_id": "h" * 65},
    {"extra": 1},
    {"tier": "instant"},
]


def _marshmallow(data):
    try:
        return "ok", Schema.load(ReportIn(), data)
    except ValidationError as exc:
        return "error", exc.messages


@pytest.mark.parametrize("change", VARIANTS, ids=range(len(VARIANTS)))
def test_the_plain_road_agrees_with_marshmallow(change):
    data = {**GOOD, **change}
    plain = ReportIn()._plain_load(data)
    kind, expected = _marshmallow(data)
    if plain is not None:
        assert kind == "ok" and plain == expected and list(plain) == list(expected)
    if kind == "ok":  # either road, then the phone normalised
        assert ReportIn().load(data) == {**expected, "reporter_phone": normalise(expected["reporter_phone"])}
    else:
        with pytest.raises(ValidationError) as raised:
            ReportIn().load(data)
        assert raised.value.messages == expected


def test_a_plain_report_takes_the_plain_road():
    assert ReportIn()._plain_load(dict(GOOD)) is not None
    assert ReportIn()._plain_load([GOOD]) is None
    assert ReportIn(partial=True)._plain_load(dict(GOOD)) is None
