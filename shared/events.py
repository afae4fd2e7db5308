"""The event envelope and the payload schema of every event type, shared by all services.

Payloads are read tolerantly (unknown keys ignored) so a producer can add a field before every
consumer knows it; the envelope itself is strict.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from .clock import iso
from .domain.ids import derived_id, new_id
from .payload_check import FastLoader
from .personal import is_personal, open_tree, seal_tree

ENVELOPE_VERSION = 1
TOWNSHIP_CODE = validate.Regexp(r"^\d{9}$", error="必须是9位行政区划代码")
# Not blank: some character that is not white space. Regexp matches at the start, hence the leading
# run; the class spells out Python's \s (which also counts \x1c-\x1f and \x85) and ECMA's (\ufeff),
# so the OpenAPI pattern means for a client exactly what it means here.
_BLANK = r"\s\x1c-\x1f\x85\ufeff"
NOT_BLANK = validate.Regexp(rf"[{_BLANK}]*[^{_BLANK}]", error="不能为空白")
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
    # The resident's loop (services/dispatch/resident_loop.py): case.merged names the case it joined
    # and every report that now follows it; case.reopened carries the rating that reopened it.
    merged_into_case_id = fields.String(allow_none=True)
    merged_into_report_id = fields.String(allow_none=True)
    merged_into_tracking_no = fields.String(allow_none=True)
    linked_report_ids = fields.List(fields.String(), allow_none=True)
    rating = fields.String(allow_none=True)
    comment = fields.String(allow_none=True)
    resolution = fields.Integer(allow_none=True)
    reopens = fields.Integer(allow_none=True)
    # Pausing the clock (services/dispatch/pausing.py): case.paused says why and until when at the
    # latest; case.resumed how long the pause lasted. pause_reason: awaiting_resident | awaiting_external.
    pause_reason = fields.String(allow_none=True)
    resume_at = fields.String(allow_none=True)
    paused_until = fields.String(allow_none=True)
    paused_seconds = fields.Integer(allow_none=True)


class ResolvedBy(_Payload):
    """Who resolved the case a rating or a follow-up is about (the level whose points it feeds)."""
    level = fields.String(allow_none=True)
    unit_id = fields.String(allow_none=True)
    unit_name = fields.String(allow_none=True)
    lead_id = fields.String(allow_none=True)
    lead_name = fields.String(allow_none=True)


class ReportFollowed(_Payload):
    """A resident chose to follow an existing report instead of their own (a likely duplicate)."""
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    target_report_id = fields.String(required=True)
    target_tracking_no = fields.String(required=True)
    actor = fields.String(allow_none=True)


class ReportRated(_Payload):
    """A resident's rating of one resolution of a case (群众评单); feeds reopening and leads' points."""
    case_id = fields.String(required=True)
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    category = fields.String(allow_none=True)
    rating = fields.String(required=True, validate=validate.OneOf(("satisfied", "basically_satisfied", "unsatisfied")))
    rating_label = fields.String(allow_none=True)
    satisfied = fields.Boolean(allow_none=True)   # 满意 and 基本满意 count as satisfied (满意率)
    comment = fields.String(allow_none=True)
    resolution = fields.Integer(required=True)
    resolved_at = fields.String(allow_none=True)
    resolved_by = fields.Nested(ResolvedBy, allow_none=True)
    source = fields.String(load_default="resident", validate=validate.OneOf(("resident", "followup")))
    linked = fields.Boolean(load_default=False)   # the rater follows the case from a report merged into it
    rated_at = fields.String(allow_none=True)


class RatingRequested(_Payload):
    """intake asks a resident to rate a resolution (sent for the case's own report and each linked one)."""
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    case_id = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    summary = fields.String(allow_none=True)
    resolution = fields.Integer(allow_none=True)
    rate_url = fields.String(allow_none=True)
    canonical_tracking_no = fields.String(allow_none=True)
    linked = fields.Boolean(load_default=False)


class FollowupEvent(_Payload):
    """A follow-up call (回访) the township owes a resident who did not rate in time, and its outcome.

    The outcome carries no verdict field: a satisfied/unsatisfied outcome is recorded as the
    resident's rating and travels as ``report.rated`` (source "followup"), so points count it once."""
    followup_id = fields.String(required=True)
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    case_id = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    summary = fields.String(allow_none=True)
    resolution = fields.Integer(allow_none=True)
    resolved_by = fields.Nested(ResolvedBy, allow_none=True)
    outcome = fields.String(allow_none=True,
                            validate=validate.OneOf(("reached", "satisfied", "unsatisfied", "unreachable")))
    note = fields.String(allow_none=True)
    actor = fields.String(allow_none=True)
    due_at = fields.String(allow_none=True)
    completed_at = fields.String(allow_none=True)


class _CaseRef(_Payload):
    """The three names every event about a case carries."""
    case_id = fields.String(required=True)
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)


class DepartmentEvent(_CaseRef):
    """department.* events (the escalation service): a city department holds or missed a case.
    Contact fields are optional; notify also has a configured directory of departments."""
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
    attachments = fields.List(fields.String(), allow_none=True)   # part_submitted: links and files
    lead_department_id = fields.String(allow_none=True)     # part_submitted: whom it concerns
    lead_department_name = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    # The city's supervisor (督办): a department has no level above it, it is supervised instead.
    supervisor_name = fields.String(allow_none=True)
    supervisor_phone = fields.String(allow_none=True)
    supervisor_wecom_id = fields.String(allow_none=True)


class DepartmentUnmatched(_CaseRef):
    """A referred case whose category has no lead department in the city's matrix: the township must pick one."""
    category = fields.String(required=True)
    city = fields.String(required=True)
    summary = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    urgent = fields.Boolean(load_default=False)


class CaseReturned(_CaseRef):
    """A lead department refused a case as not its responsibility (退单); the township re-routes or rules."""
    category = fields.String(allow_none=True)
    department_id = fields.String(required=True)
    department_name = fields.String(required=True)
    reason = fields.String(required=True)
    evidence = fields.List(fields.String(), load_default=list)
    note = fields.String(allow_none=True)
    actor = fields.String(allow_none=True)
    urgent = fields.Boolean(load_default=False)


class CaseSignedOff(_CaseRef):
    """A department closed a case on its own responsibility (销号)."""
    category = fields.String(allow_none=True)
    department_id = fields.String(allow_none=True)
    department_name = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    # The department's links and files (its own files at /dept/files/<id>, served by escalation).
    attachments = fields.List(fields.String(), load_default=list)
    actor = fields.String(allow_none=True)
    urgent = fields.Boolean(load_default=False)


class ReportSupplemented(_Payload):
    """The resident answered a case paused for them (补充材料): dispatch resumes its clock."""
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    case_id = fields.String(allow_none=True)
    text = fields.String(required=True)
    photos = fields.List(fields.String(), load_default=list)
    supplemented_at = fields.String(allow_none=True)


class ReportPhotoAdded(_Payload):
    """A photo was attached to a report (intake keeps the bytes): by the resident, the lead handling
    it or the township's staff. dispatch lists it on the case; the photo is read at ``url`` (intake,
    GET /api/v1/photos/<id>, same public address). ``by`` is a kind, never a person's number."""
    report_id = fields.String(required=True)
    tracking_no = fields.String(required=True)
    case_id = fields.String(allow_none=True)
    photo_id = fields.String(required=True)
    url = fields.String(required=True)
    content_type = fields.String(allow_none=True)
    by = fields.String(required=True, validate=validate.OneOf(("resident", "lead", "staff", "app")))
    added_at = fields.String(required=True)


class OrgContacts(_Payload):
    """Leads' contacts, so notify can reach them without reading dispatch's database; `posts` is
    every unit with its parent and the people who answer for it (a lead post's lead, a village
    committee's duty contacts, the township's staff), first to contact first — what notify climbs
    when a holder has no usable address. Older producers send no `posts`."""
    leads = fields.List(fields.Dict(), required=True)
    posts = fields.List(fields.Dict(), load_default=None, allow_none=True)


class SigninCodeRequested(_Payload):
    """A person asked for a sign-in code. The code is not here: notify derives it from the challenge
    id with the shared secret (shared/domain/signin_codes.py). The phone travels sealed."""
    challenge_id = fields.String(required=True)
    recipient_id = fields.String(required=True)
    name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    wecom_id = fields.String(allow_none=True)
    expires_at = fields.String(required=True)
    urgent = fields.Boolean(load_default=True)   # never held by quiet hours or merged into a digest
    # Who signs in: a person with an account or a post (dispatch), or a resident (intake's 群众服务);
    # notify words the message for each. Older producers send none: a person.
    audience = fields.String(load_default="person", validate=validate.OneOf(("person", "resident")))


class AccessRevoked(_Payload):
    """Sessions that must stop working at once in every service (sign-out, sign-out everywhere, an
    account removed, a lead removed by a red card or a roster change)."""
    session_ids = fields.List(fields.String(), required=True)
    account_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    expires_at = fields.String(allow_none=True)   # the latest expiry among them: the deny rows' end


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
    # the resident's loop: duplicates, ratings, reopening, follow-ups
    "case.merged": CaseEvent,
    "case.reopened": CaseEvent,
    "report.followed": ReportFollowed,
    "report.rated": ReportRated,
    "report.rating_requested": RatingRequested,
    "followup.created": FollowupEvent,
    "followup.completed": FollowupEvent,
    # pausing the clock: the holder waits for the resident or an outside event; the resident answers
    "case.paused": CaseEvent,
    "case.resumed": CaseEvent,
    "report.supplemented": ReportSupplemented,
    # photos attached to a report after it was made (intake's resident_photos.py): dispatch lists them
    "report.photo_added": ReportPhotoAdded,
    # people's sign-in (services/dispatch/signin.py, sessions.py)
    "signin.code_requested": SigninCodeRequested,
    "access.revoked": AccessRevoked,
}


class UnknownEventType(ValidationError):
    pass


# Building a marshmallow Schema deep-copies its fields; instances are reusable and thread-safe
# for load(), so each is built once (it was a third of a consumer's time per event).
_ENVELOPE = EnvelopeSchema()
_SCHEMAS: dict[str, Schema] = {}
_FAST = FastLoader()  # make_event's road for payloads plain type checks prove (payload_check.py)
_SEALED_TYPES: dict[str, bool] = {}  # event type → may its payload hold a contact field (below)

# Fields whose loaded value is a plain value: under a key that is not personal, nothing to seal.
_LEAVES = (fields.String, fields.Number, fields.Boolean, fields.DateTime, fields.Date, fields.Time,
           fields.TimeDelta, fields.UUID)


def _may_hold_personal(schema: Schema, seen: frozenset = frozenset()) -> bool:
    """Could a payload loaded by ``schema`` carry a contact field anywhere? Judged once per event
    type from its fields' names and kinds: a personal name, a free mapping (its keys are anyone's),
    anything not known to be plain, or a schema keeping unknown keys say yes. Sealing walks every
    value of every event built (issue 16): a case event, which cannot hold one, skips the walk."""
    if type(schema) in seen or schema.unknown not in (EXCLUDE, RAISE):
        return True
    seen = seen | {type(schema)}
    for name, field in schema.fields.items():
        if any(is_personal(key) for key in (name, field.attribute, field.data_key) if key):
            return True
        if _field_may_hold_personal(field, seen):
            return True
    return False


def _field_may_hold_personal(field: fields.Field, seen: frozenset) -> bool:
    if isinstance(field, _LEAVES):
        return False
    if isinstance(field, fields.Nested):
        return _may_hold_personal(field.schema, seen)
    if isinstance(field, fields.List):
        return _field_may_hold_personal(field.inner, seen)
    return True  # a Dict, Raw, Method, Function …: what it holds is not known here


def _seals(type_: str, schema: Schema) -> bool:
    seals = _SEALED_TYPES.get(type_)
    if seals is None:
        seals = _SEALED_TYPES[type_] = _may_hold_personal(schema)
    return seals


def _schema(type_: str) -> Schema:
    schema = _SCHEMAS.get(type_)
    if schema is None:
        if type_ not in PAYLOADS:
            raise UnknownEventType(f"unknown event type {type_}")
        schema = _SCHEMAS[type_] = PAYLOADS[type_]()
    return schema


def make_event(type_: str, township: str, payload: dict[str, Any], *, at: datetime,
               correlation_id: str | None, caused_by: str | None = None, key: str = "") -> dict:
    """An event caused by another gets an id derived from its cause, so redelivery re-emits the same id.

    The payload is checked against its contract on the fast road when plain type checks prove it
    (payload_check.py), by marshmallow otherwise — which raises, naming the field, for a bad one."""
    schema = _schema(type_)
    loaded = _FAST.load(schema, payload)
    body = schema.load(payload) if loaded is None else loaded
    if _seals(type_, schema):
        body = seal_tree(body)
    event_id = derived_id(caused_by, type_, key) if caused_by else new_id()
    return {"id": event_id, "type": type_, "township": township, "occurred_at": iso(at),
            "version": ENVELOPE_VERSION, "correlation_id": correlation_id, "payload": body}


def load_event(raw: dict) -> dict:
    """Validates an incoming envelope and its payload; raises ValidationError for a poison message."""
    env = _FAST.load(_ENVELOPE, raw) or _ENVELOPE.load(raw)
    try:
        clear = open_tree(env["payload"])
    except ValueError as exc:
        raise ValidationError({"payload": [str(exc)]}) from exc
    schema = _schema(env["type"])
    # The fast road first, as make_event does (payload_check.py): marshmallow still decides the rest.
    loaded = _FAST.load(schema, clear)
    env["payload"] = schema.load(clear) if loaded is None else loaded
    return env
