"""shared.jsontext gives the standard library's answers, faster: the same values back, non-ASCII
kept as it is, and the standard library's behaviour wherever orjson is stricter."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from shared import jsontext

DOC = {"_id": "c-1", "name": "周桂香", "version": 3, "at": "2026-11-02T07:00:00Z", "n": 1.5, "ok": True,
       "none": None, "timeline": [{"text": "办结，附照片1张（已更换路灯灯泡）"}], "nested": {"a": [1, 2.25, "三"]}}


def test_round_trips_and_reads_what_the_standard_library_wrote():
    assert jsontext.loads(jsontext.dumps(DOC)) == DOC
    assert jsontext.loads(jsontext.dumps_bytes(DOC)) == DOC
    assert jsontext.loads(json.dumps(DOC, ensure_ascii=False)) == DOC      # documents stored before
    assert json.loads(jsontext.dumps(DOC)) == DOC                           # and the other way round


def test_non_ascii_is_kept_and_the_text_is_compact():
    text = jsontext.dumps({"k": "邻长"})
    assert text == '{"k":"邻长"}'
    assert jsontext.dumps_bytes({"k": "邻长"}) == text.encode()


def test_non_string_keys_are_written_as_strings_like_json():
    assert jsontext.loads(jsontext.dumps({1: "a", 2.5: "b"})) == json.loads(json.dumps({1: "a", 2.5: "b"}))


def test_what_json_refused_is_still_refused_not_turned_into_text():
    with pytest.raises(TypeError):
        jsontext.dumps({"at": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    with pytest.raises(TypeError):
        jsontext.dumps_bytes({"x": object()})


def test_where_orjson_is_stricter_the_standard_library_answers():
    big = 2 ** 70                                   # beyond 64 bits
    assert jsontext.loads(jsontext.dumps({"n": big})) == {"n": big}
    assert jsontext.dumps({"s": "\ud800"}) == json.dumps({"s": "\ud800"}, ensure_ascii=False, separators=(",", ":"))
    assert jsontext.loads('{"x": NaN}')["x"] != jsontext.loads('{"x": NaN}')["x"]   # NaN read as json reads it
    for body in (b'\xef\xbb\xbf{"a":"\xe9\x82\xbb"}', '{"a":"邻"}'.encode("utf-16")):   # a BOM, UTF-16
        assert jsontext.loads(body) == json.loads(body) == {"a": "邻"}


def test_bad_text_raises_what_json_raises():
    with pytest.raises(ValueError):
        jsontext.loads("{not json")
    with pytest.raises(ValueError):
        jsontext.loads(b"\xff\xfe")
