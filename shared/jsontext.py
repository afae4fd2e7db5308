"""JSON text for stored documents and message bodies, written and read with orjson.

Why orjson: every stored document in the SQLite adapter and every event on the wire is JSON, and
the standard library's encoder was the largest single cost of an SLA firing (a whole case written
back: 23 % of the sweeper's Python time) and a large one of intake's accept path (issue 16);
orjson does the same work several times faster. It is a well-kept library with wheels for every
platform the image runs on.

The answers are the standard library's: UTF-8 text with non-ASCII as it is (``ensure_ascii=False``),
non-string keys written as strings, key order kept. Where orjson is stricter than ``json`` — a
datetime (refused here as before, never silently turned into text), a lone surrogate, an integer
beyond 64 bits, a BOM or NaN read back — the standard library does the work instead, so nothing
that was accepted before is refused now, and what it refused it still refuses with the same error.
One difference: NaN is written as null (the standard library wrote ``NaN``, which SQLite's JSON
functions cannot read). Whitespace differs too (compact), which no reader depends on.
"""
from __future__ import annotations

import json

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _std(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def dumps(value) -> str:
    """Compact JSON text."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except TypeError:   # orjson.JSONEncodeError is one
        return _std(value)


def dumps_bytes(value) -> bytes:
    """Compact JSON as UTF-8 bytes (a message body)."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:   # orjson.JSONEncodeError is one
        return _std(value).encode()


def loads(text: str | bytes):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)   # what orjson will not read (NaN, a BOM, UTF-16), or the same error
