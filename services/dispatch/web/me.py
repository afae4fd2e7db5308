"""我的积分与走访 on the lead's workbench: the points the lead's post earned (as GET /my/ledger
counts them), this quarter's points and card (the township's review, supervision/cards.py), and
the households to visit, key households and the overdue first: one tap logs a visit now, and a
small form per household records what was found and a past day (今天/昨天/前天)."""
from __future__ import annotations

from datetime import timedelta

from flask import redirect, request
from marshmallow import ValidationError

from shared.auth import CSRF_FIELD
from shared.clock import iso
from shared.domain.ids import derived_id
from shared.domain.levels import LEAD_LEVELS
from shared.pages.web import field_errors

from ..page_forms import VISIT_DAYS, VisitForm
from ..supervision.cards import quarter_bounds
from ..supervision.facts import lead_key, quarter_of
from ..supervision.visits import MODES, VisitError

MAX_ENTRIES = 500
SHOWN_ENTRIES = 20
CARD_STATUS = {"proposed": "镇(街道)待确认", "confirmed": "镇(街道)已确认", "changed": "镇(街道)已调整"}


def my_points(sup, principal) -> dict:
    """All-time points, this quarter's points and the quarter's card of the lead in the post."""
    quarter = quarter_of(iso(sup.clock.now()))
    unit = sup.org.unit(principal.unit_id or "") or {}
    if not unit or not principal.sees(unit["township"]) or unit["level"] not in LEAD_LEVELS:
        return {"points": 0, "entries": [], "quarter": quarter, "quarter_points": 0, "card": None, "township": None}
    key = lead_key(unit["level"], unit["_id"], (unit.get("lead") or {}).get("name"))
    entries = sup.ledger.list(unit["township"], lead=key, limit=MAX_ENTRIES)
    entries = sorted(entries, key=lambda e: e["at"], reverse=True)
    since, until = quarter_bounds(quarter)
    # Standings and cards leave exchanges out (spending points is not a bad mark): so does this figure.
    this_quarter = [e for e in entries if since <= e["at"] < until and not e["rule"].startswith("exchange")]
    return {"points": round(sum(e["points"] for e in entries), 2), "entries": entries[:SHOWN_ENTRIES],
            "quarter": quarter, "quarter_points": round(sum(e["points"] for e in this_quarter), 2),
            "card": card_of(sup.cards.get(derived_id("card", unit["township"], quarter, key))),
            "township": unit["township"]}


def card_of(doc: dict | None) -> dict | None:
    """The quarter's card as the lead reads it: the decided one, else the proposal, with the reasons."""
    if doc is None:
        return None
    card = doc.get("final") or doc["proposed"]
    name = doc.get("final_name") if doc.get("final") else doc.get("proposed_name")
    return {"card": card, "name": name, "status": CARD_STATUS.get(doc.get("status"), ""),
            "reasons": doc.get("reasons") or [], "note": doc.get("note")}


def me_routes(bp, pages, sup, person, signin, issuer=None) -> None:
    def show(principal, errors=None, values=None, status=200, notice=None):
        households = sup.visits.households_of(principal) if principal.role == "lead" else []
        csrf = issuer.csrf_token(principal.session_id) if issuer is not None else ""
        return pages.render("me.html", status=status, title="我的积分与走访", who=principal.name,
                            points=my_points(sup, principal), households=households, modes=MODES,
                            days={k: label for k, (label, _) in VISIT_DAYS.items()}, csrf=csrf,
                            csrf_field=CSRF_FIELD, errors=errors or {}, values=values or {}, notice=notice)

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
        values.pop(CSRF_FIELD, None)
        household = str(values.get("household_id") or "")[:64]
        try:
            body = VisitForm().load(values)
            days = VISIT_DAYS[body.pop("day")][1]
            if days:
                body["at"] = sup.clock.now() - timedelta(days=days)
            sup.visits.log(principal, body)
        except ValidationError as exc:
            return show(principal, {household: field_errors(exc)}, {household: values}, 422)
        except VisitError as exc:
            return show(principal, {household: {exc.field: exc.message}}, {household: values}, 422)
        except LookupError:
            return pages.render("gone.html", status=404, title="未找到")
        return redirect("/lead/me?done=visit", 303)
