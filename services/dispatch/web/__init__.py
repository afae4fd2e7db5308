"""dispatch's pages: the entry page at the system's root (who are you → your page), the township
staff's start page (their townships' boards) and the lead's workbench (/lead/, after sign-in).
The kit is served under /pages/kit/."""
from __future__ import annotations

from pathlib import Path

from shared.pages.text import SITES
from shared.pages.web import Pages, kit_blueprint

from .entry import entry_routes
from .lead import lead_routes
from .staff_cases import staff_case_routes

PREFIX = "/pages"


def build_pages(org, desk, issuer, sup=None) -> list:
    from flask import Blueprint

    pages = Pages(Path(__file__).parent / "templates", kit=f"{PREFIX}/kit", site=SITES["handling"])
    bp = Blueprint("entry_pages", __name__)
    entry_routes(bp, pages, org)
    if issuer is not None:   # sessions need the secret
        lead_routes(bp, pages, desk, issuer, sup)
        staff_case_routes(bp, pages, org, desk, issuer)
    return [kit_blueprint("dispatch_kit", PREFIX), bp]
