"""The lead's workbench forms (services/dispatch/web/lead.py): what each field accepts, with the
Chinese message shown next to it. The session's CSRF field is checked by shared.auth, not here."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, pre_load, validate

from .transitions import ESCALATION_REASONS

NOTE = validate.Length(min=2, max=500, error="请写2到500个字")


def _blank_to_none(data):
    return {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()
            if not (isinstance(v, str) and not v.strip())}


class _Form(Schema):
    class Meta:
        unknown = EXCLUDE   # the CSRF field, the submit button

    @pre_load
    def _blanks(self, data, **_):
        return _blank_to_none(data)


class AcceptForm(_Form):
    note = fields.String(validate=validate.Length(max=500, error="不超过500个字"))


class NoteForm(_Form):
    """进展、办结、答复督办: what was done."""
    note = fields.String(required=True, validate=NOTE, error_messages={"required": "请写明办理情况"})


class EscalateForm(_Form):
    """上交: why it goes up a level."""
    reason = fields.String(required=True, validate=validate.OneOf(list(ESCALATION_REASONS), error="请选择上交原因"),
                           error_messages={"required": "请选择上交原因"})
    note = fields.String(validate=validate.Length(max=500, error="不超过500个字"))


class AnswerForm(NoteForm):
    supervision_id = fields.String(required=True, validate=validate.Length(min=1, max=40),
                                   error_messages={"required": "缺少督办编号，请刷新页面"})
