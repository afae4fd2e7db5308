"""The event envelope and the payload schema of every event type, shared by all services.

Payloads are read tolerantly (unknown keys ignored) so a producer can add a field before every
consumer knows it; the envelope itself is strict.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from .clock import iso
from .ids import derived_id, new_id

ENVELOPE_VERSION = 1
TOWNSHIP_CODE = validate.Regexp(r"^\d{9}$", error="必须是9位行政区划代码")
LEVELS = ("neighbourhood", "group", "area", "village", "township", "department")


class EnvelopeSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Length(min=8, max=64))
    type = fields.String(required=True, validate=validate.Length(min=3, max=64))
    township = fields.String(required=True, validate=TOWNSHIP_CODE)
    occurred_at = fields.String(required=True)
    version = fields.Integer(required=True)
    correlation_id = fields.String(required=True, allow_none=True)
    payload = fields.Dict(required=True)


class _Payload(Schema):
    class Meta:
        unknown = EXCLUDE


class Assignee(_Payload):
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    unit_id = fields.String(required=True, allow_none=True)
    unit_name = fields.String(required=True)
    lead_id = fields.String(allow_none=True)
    lead_name = fields.String(allow_none=True)
    lead_phone_masked = fields.String(allow_none=True)


class ReportSubmitted(_Payload):
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    category = fields.String(required=True)
    tier = fields.String(allow_none=True, load_default=None)
    description = fields.String(required=True)
    channel = fields.String(required=True)
    household_id = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    reporter_phone = fields.String(allow_none=True)
    reporter_name = fields.String(allow_none=True)
    location = fields.Dict(allow_none=True)
    photos = fields.List(fields.String(), load_default=list)
    urgent = fields.Boolean(load_default=False)
    submitted_at = fields.String(required=True)


class CaseEvent(_Payload):
    """Every case.* event names the case, its report and who holds it now."""
    case_id = fields.String(required=True)
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    category = fields.String(required=True)
    tier = fields.String(required=True)
    status = fields.String(required=True)
    assignee = fields.Nested(Assignee, required=True)
    previous = fields.Nested(Assignee, allow_none=True)
    reason = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    actor = fields.String(allow_none=True)
    due_at = fields.String(allow_none=True)
    promise_due = fields.String(allow_none=True)
    urgent = fields.Boolean(load_default=False)
    summary = fields.String(allow_none=True)


class OrgContacts(_Payload):
    """Leads' contacts, so notify can reach them without reading dispatch's database."""
    leads = fields.List(fields.Dict(), required=True)


PAYLOADS: dict[str, type[Schema]] = {
    "report.submitted": ReportSubmitted,
    "case.assigned": CaseEvent,
    "case.accepted": CaseEvent,
    "case.progress": CaseEvent,
    "case.supervised": CaseEvent,
    "case.escalated": CaseEvent,
    "case.reassigned": CaseEvent,
    "case.resolved": CaseEvent,
    "case.referred": CaseEvent,
    "case.updated": CaseEvent,
    "sla.warning": CaseEvent,
    "sla.breached": CaseEvent,
    "org.contacts_changed": OrgContacts,
}


class UnknownEventType(ValidationError):
    pass


def make_event(type_: str, township: str, payload: dict[str, Any], *, at: datetime,
               correlation_id: str | None, caused_by: str | None = None, key: str = "") -> dict:
    """An event caused by another gets an id derived from its cause, so redelivery re-emits the same id."""
    if type_ not in PAYLOADS:
        raise UnknownEventType(f"unknown event type {type_}")
    body = PAYLOADS[type_]().load(payload)
    event_id = derived_id(caused_by, type_, key) if caused_by else new_id()
    return {"id": event_id, "type": type_, "township": township, "occurred_at": iso(at),
            "version": ENVELOPE_VERSION, "correlation_id": correlation_id, "payload": body}


def load_event(raw: dict) -> dict:
    """Validates an incoming envelope and its payload; raises ValidationError for a poison message."""
    env = EnvelopeSchema().load(raw)
    schema = PAYLOADS.get(env["type"])
    if schema is None:
        raise UnknownEventType(f"unknown event type {env['type']}")
    env["payload"] = schema().load(env["payload"])
    return env
