"""A fast road through the event contracts for payloads the code itself builds (issue 16).

marshmallow's ``Schema.load`` was a fifth of an SLA sweep's time: every breach builds two case
events whose payloads come from the stored, already validated case. ``fast_load`` compiles each
payload schema once into plain type checks plus the fields' own validators and returns exactly what
``schema.load`` would return (same keys in the same order, defaults filled, unknown keys dropped,
lists and mappings copied) — but only when every field passes those checks. For anything else (a
missing required field, a wrong type, a value a validator refuses, a number sent as text that
marshmallow would convert) it returns None and the caller runs marshmallow, which accepts the
payload or names the error. Nothing is validated less; odd values take the slow road.

A schema using anything this file does not know (schema hooks, field hooks, data keys, other field
classes) is never compiled: it always takes the slow road. tests/unit/test_payload_check.py checks
the two roads agree on generated payloads of every event type.
"""
from __future__ import annotations

from typing import Any, Callable

from marshmallow import Schema, ValidationError, fields
from marshmallow.utils import missing


class _Slow(Exception):
    """This value needs marshmallow: it may be converted, or it is an error to be named."""


Check = Callable[[Any], Any]


def _validated(field: fields.Field, check: Check) -> Check:
    validators = tuple(field.validators)
    if not validators:
        return check

    def run(value):
        out = check(value)
        for validator in validators:
            try:
                if validator(out) is False:
                    raise _Slow
            except ValidationError as exc:
                raise _Slow from exc
        return out
    return run


def _string(value):
    if type(value) is not str:
        raise _Slow
    return value


def _integer(value):
    if type(value) is not int:  # bool is refused by marshmallow, text converted: both slow
        raise _Slow
    return value


def _boolean(value):
    if type(value) is not bool:
        raise _Slow
    return value


def _mapping(value):
    if type(value) is not dict:
        raise _Slow
    return dict(value)  # marshmallow's Dict without key or value fields returns a shallow copy


def _list_of(inner: Check, allow_none: bool) -> Check:
    def check(value):
        if type(value) is not list:
            raise _Slow
        return [None if each is None and allow_none else inner(each) for each in value]
    return check


def _field(field: fields.Field) -> Check | None:
    """One field's check of a present, non-None value; None when this file cannot mirror it."""
    if field.data_key is not None or field.attribute is not None or getattr(field, "pre_load", None) \
            or getattr(field, "post_load", None):
        return None
    kind = type(field)
    if kind is fields.String:
        check = _string
    elif kind is fields.Integer and not field.strict:
        check = _integer
    elif kind is fields.Boolean:
        check = _boolean
    elif kind is fields.Dict and field.key_field is None and field.value_field is None:
        check = _mapping
    elif kind is fields.List:
        inner = _field(field.inner)
        if inner is None:
            return None
        check = _list_of(inner, field.inner.allow_none)
    elif kind is fields.Nested and not field.many and field.unknown is None and not field.only \
            and not field.exclude and isinstance(field.nested, type) and issubclass(field.nested, Schema):
        compiled = compile_schema(field.schema)
        if compiled is None:
            return None
        check = compiled
    else:
        return None
    return _validated(field, check)


def compile_schema(schema: Schema) -> Check | None:
    """The whole payload's check, or None when the schema needs marshmallow every time."""
    if any(schema._hooks.values()) or schema.many or schema.partial or schema.unknown not in ("exclude", "raise"):
        return None
    # A strict schema (the event envelope) refuses unknown keys: any key it does not know is slow,
    # and marshmallow names the error.
    known = frozenset(schema.load_fields) if schema.unknown == "raise" else None
    plan = []
    for name, field in schema.load_fields.items():
        check = _field(field)
        if check is None:
            return None
        plan.append((name, check, field.required, field.allow_none, field.load_default))

    def load(data):
        if type(data) is not dict or (known is not None and not known.issuperset(data)):
            raise _Slow
        out = {}
        for name, check, required, allow_none, default in plan:
            value = data.get(name, missing)
            if value is missing:
                if required:
                    raise _Slow
                if default is not missing:
                    out[name] = default() if callable(default) else default
            elif value is None:
                if not allow_none:
                    raise _Slow
                out[name] = None
            else:
                out[name] = check(value)
        return out
    return load


class FastLoader:
    """Compiled checks per schema instance, built on first use."""

    def __init__(self):
        self._compiled: dict[int, tuple[Schema, Check | None]] = {}

    def load(self, schema: Schema, payload: Any) -> dict | None:
        """What ``schema.load(payload)`` returns, or None: then ask marshmallow."""
        entry = self._compiled.get(id(schema))
        if entry is None or entry[0] is not schema:
            entry = self._compiled[id(schema)] = (schema, compile_schema(schema))
        check = entry[1]
        if check is None:
            return None
        try:
            return check(payload)
        except _Slow:
            return None
