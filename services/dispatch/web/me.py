"""我的积分与走访 on the lead's workbench: the points the lead's post earned (as GET /my/ledger
counts them) and the households to visit, key households and the overdue first."""
from __future__ import annotations

from flask import redirect, request
from marshmallow import ValidationError

from shared.auth import CSRF_FIELD
from shared.domain.levels import LEAD_LEVELS
from shared.pages.web import field_errors

from ..page_forms import VisitForm
from ..supervision.facts import lead_key
from ..supervision.visits import MODES, VisitError

MAX_ENTRIES = 500
SHOWN_ENTRIES = 20


def my_points(sup, principal) -> dict:
    unit = sup.org.unit(principal.unit_id or "") or {}
    if not unit or not principal.sees(unit["township"]) or unit["level"] not in LEAD_LEVELS:
        return {"points": 0, "entries": []}
    key = lead_key(unit["level"], unit["_id"], (unit.get("lead") or {}).get("name"))
    entries = sup.ledger.list(unit["township"], lead=key, limit=MAX_ENTRIES)
    entries = sorted(entries, key=lambda e: e["at"], reverse=True)
    return {"points": round(sum(e["points"] for e in entries), 2), "entries": entries[:SHOWN_ENTRIES]}


def me_routes(bp, pages, sup, person, signin, issuer=None) -> None:
    def show(principal, errors=None, status=200, notice=None):
        households = sup.visits.households_of(principal) if principal.role == "lead" else []
        csrf = issuer.csrf_token(principal.session_id) if issuer is not None else ""
        return pages.render("me.html", status=status, title="我的积分与走访", who=principal.name,
                            points=my_points(sup, principal), households=households, modes=MODES,
                            csrf=csrf, csrf_field=CSRF_FIELD, errors=errors or {}, notice=notice)

    @bp.get("/lead/me")
    def me():
        principal = person()
        if principal is None:
            return signin("/lead/me")
        return show(principal, notice="走访已记录。" if request.args.get("done") == "visit" else None)

    @bp.post("/lead/me/visits")
    def log_visit():
        principal = person()   # a cookie write: shared.auth has checked the CSRF token
        if principal is None or principal.role != "lead":
            return signin("/lead/me")
        values = request.form.to_dict()
        household = str(values.get("household_id") or "")[:64]
        try:
            sup.visits.log(principal, VisitForm().load(values))
        except ValidationError as exc:
            return show(principal, {household: field_errors(exc)}, 422)
        except VisitError as exc:
            return show(principal, {household: {exc.field: exc.message}}, 422)
        except LookupError:
            return pages.render("gone.html", status=404, title="未找到")
        return redirect("/lead/me?done=visit", 303)
