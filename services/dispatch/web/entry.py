"""The entry page (the system's root URL) and the staff's start page."""
from __future__ import annotations

MAX_TOWNSHIPS = 200


def entry_routes(bp, pages, org) -> None:
    @bp.get("/")
    def entry():
        return pages.render("entry.html", title="请选择您的身份")

    @bp.get("/staff/")
    def staff():
        townships = sorted(org.townships.find({}, limit=MAX_TOWNSHIPS), key=lambda t: t["_id"])
        return pages.render("staff.html", title="镇村干部", townships=townships)
