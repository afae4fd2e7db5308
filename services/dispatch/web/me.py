"""我的积分与走访 on the lead's workbench: the points the lead's post earned (as GET /my/ledger
counts them) and the households to visit, key households and the overdue first."""
from __future__ import annotations

from shared.domain.levels import LEAD_LEVELS

from ..supervision.facts import lead_key

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


def me_routes(bp, pages, sup, person, signin) -> None:
    @bp.get("/lead/me")
    def me():
        principal = person()
        if principal is None:
            return signin("/lead/me")
        households = sup.visits.households_of(principal) if principal.role == "lead" else []
        return pages.render("me.html", title="我的积分与走访", who=principal.name, points=my_points(sup, principal),
                            households=households)
