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
    reporter_openid = fields.String(allow_none=True)  # WeChat openid when filed from the official account
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


class DepartmentEvent(_Payload):
    """department.* events (the escalation service): a city department holds or missed a case.
    Contact fields are optional; notify also has a configured directory of departments."""
    case_id = fields.String(required=True)
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    department_id = fields.String(required=True)
    department_name = fields.String(required=True)
    township = fields.String(allow_none=True)
    due_at = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    summary = fields.String(allow_none=True)
    urgent = fields.Boolean(load_default=False)
    contact_name = fields.String(allow_none=True)
    contact_phone = fields.String(allow_none=True)
    wecom_id = fields.String(allow_none=True)
    # escalation's detail (all optional): the department's role and clocks, and what happened.
    role = fields.String(allow_none=True, validate=validate.OneOf(("lead", "co")))
    status = fields.String(allow_none=True)
    tier = fields.String(allow_none=True)
    accept_due = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    actor = fields.String(allow_none=True)
    kind = fields.String(allow_none=True)            # sla: accept / finish
    decision = fields.String(allow_none=True)        # extension: approved / refused
    working_days = fields.Integer(allow_none=True)
    extension_id = fields.String(allow_none=True)
    evidence = fields.List(fields.String(), allow_none=True)
    lead_department_id = fields.String(allow_none=True)     # part_submitted: whom it concerns
    lead_department_name = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    # The city's supervisor (督办): a department has no level above it, it is supervised instead.
    supervisor_name = fields.String(allow_none=True)
    supervisor_phone = fields.String(allow_none=True)
    supervisor_wecom_id = fields.String(allow_none=True)


class DepartmentUnmatched(_Payload):
    """A referred case whose category has no lead department in the city's matrix: the township must pick one."""
    case_id = fields.String(required=True)
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    category = fields.String(required=True)
    city = fields.String(required=True)
    summary = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    urgent = fields.Boolean(load_default=False)


class CaseReturned(_Payload):
    """A lead department refused a case as not its responsibility (退单); the township re-routes or rules."""
    case_id = fields.String(required=True)
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    category = fields.String(allow_none=True)
    department_id = fields.String(required=True)
    department_name = fields.String(required=True)
    reason = fields.String(required=True)
    evidence = fields.List(fields.String(), load_default=list)
    note = fields.String(allow_none=True)
    actor = fields.String(allow_none=True)
    urgent = fields.Boolean(load_default=False)


class CaseSignedOff(_Payload):
    """A department closed a case on its own responsibility (销号)."""
    case_id = fields.String(required=True)
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    category = fields.String(allow_none=True)
    department_id = fields.String(allow_none=True)
    department_name = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    actor = fields.String(allow_none=True)
    urgent = fields.Boolean(load_default=False)


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
    "case.signed_off": CaseSignedOff,
    "department.assigned": DepartmentEvent,
    "department.sla_breached": DepartmentEvent,
    # escalation: the rest of a department's work on a case (notify and webhooks read these)
    "department.accepted": DepartmentEvent,
    "department.progress": DepartmentEvent,
    "department.extension_requested": DepartmentEvent,
    "department.extension_decided": DepartmentEvent,
    "department.return_ruled": DepartmentEvent,
    "department.released": DepartmentEvent,
    "department.part_submitted": DepartmentEvent,
    "department.sla_warning": DepartmentEvent,
    "department.unmatched": DepartmentUnmatched,
    "case.returned": CaseReturned,
}


class UnknownEventType(ValidationError):
    pass


# Building a marshmallow Schema deep-copies its fields; instances are reusable and thread-safe
# for load(), so each is built once (it was a third of a consumer's time per event).
_ENVELOPE = EnvelopeSchema()
_SCHEMAS: dict[str, Schema] = {}


def _schema(type_: str) -> Schema:
    schema = _SCHEMAS.get(type_)
    if schema is None:
        if type_ not in PAYLOADS:
            raise UnknownEventType(f"unknown event type {type_}")
        schema = _SCHEMAS[type_] = PAYLOADS[type_]()
    return schema


def make_event(type_: str, township: str, payload: dict[str, Any], *, at: datetime,
               correlation_id: str | None, caused_by: str | None = None, key: str = "") -> dict:
    """An event caused by another gets an id derived from its cause, so redelivery re-emits the same id."""
    body = _schema(type_).load(payload)
    event_id = derived_id(caused_by, type_, key) if caused_by else new_id()
    return {"id": event_id, "type": type_, "township": township, "occurred_at": iso(at),
            "version": ENVELOPE_VERSION, "correlation_id": correlation_id, "payload": body}


def load_event(raw: dict) -> dict:
    """Validates an incoming envelope and its payload; raises ValidationError for a poison message."""
    env = _ENVELOPE.load(raw)
    env["payload"] = _schema(env["type"]).load(env["payload"])
    return env
