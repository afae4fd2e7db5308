"""Flask's JSON through orjson writes what Flask's own provider wrote: the same text for every kind
of value an answer holds, and Flask's own answer wherever orjson would refuse."""
from __future__ import annotations

import dataclasses
import decimal
import uuid
from datetime import date, datetime, timezone

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from shared.web import OrjsonProvider

VALUES = [
    {"b": 1, "a": "邻长", "c": [1, 2.5, None, True], "d": {"z": "三", "y": {}}},
    {"at": datetime(2026, 12, 7, 8, 30, tzinfo=timezone.utc), "day": date(2026, 12, 7)},
    {"id": uuid.UUID(int=7), "amount": decimal.Decimal("1.50")},
    [{"n": 1.0}, {"n": 0.1}, {"n": -3}],
]


@dataclasses.dataclass
class Point:
    x: int
    label: str


def _providers():
    app = Flask("t")
    ours = OrjsonProvider(app)
    theirs = DefaultJSONProvider(app)
    theirs.ensure_ascii = False
    return ours, theirs


def test_writes_the_same_text_as_flasks_own_provider():
    ours, theirs = _providers()
    for value in VALUES + [Point(1, "邻")]:
        assert ours.dumps(value, separators=(",", ":")) == theirs.dumps(value, separators=(",", ":"))


def test_an_indented_answer_in_debug_mode_is_flasks_own():
    ours, theirs = _providers()
    assert ours.dumps(VALUES[0], indent=2) == theirs.dumps(VALUES[0], indent=2)


def test_what_orjson_refuses_is_written_by_flask_instead():
    ours, theirs = _providers()
    huge = {"n": 2 ** 70}
    assert ours.dumps(huge) == theirs.dumps(huge)


def test_reads_what_the_standard_library_reads():
    ours, theirs = _providers()
    for text in ('{"a": "邻长", "n": [1, 2.5]}', b'{"x": null}', '{"x": NaN}'):
        a, b = ours.loads(text), theirs.loads(text)
        assert repr(a) == repr(b)


def test_a_response_is_compact_and_keeps_chinese():
    app = Flask("t")
    app.json = OrjsonProvider(app)
    with app.app_context():
        body = app.json.response({"status_text": "已受理", "id": "r-1"}).get_data(as_text=True)
    assert body == '{"id":"r-1","status_text":"已受理"}\n'
