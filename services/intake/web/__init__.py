"""The resident's pages (群众点单、评单), served by intake under /resident/: report a problem with
photos shrunk in the browser, the instant answer with "没有解决我的问题", track a report by its
tracking number and the last four digits of the phone, rate and reopen; sign in with a texted code
to report for one's own household and see 我的反映; and the photos a lead sends from the case page
with 办结 (handling.py). Plain forms answered with
pages; docs/pages.md says what a resident can do here."""
from __future__ import annotations

from pathlib import Path

from shared.pages.text import SITES
from shared.pages.web import Pages, kit_blueprint

from ..page_desk import ResidentDesk
from .account import Access
from .handling import contact_routes, handling_routes
from .report import report_routes
from .signin import signin_routes
from .track import track_routes

PREFIX = "/resident"


def build_pages(desk: ResidentDesk, access: Access | None = None) -> list:
    from flask import Blueprint

    pages = Pages(Path(__file__).parent / "templates", kit=f"{PREFIX}/kit", site=SITES["resident"], home=f"{PREFIX}/")
    bp = Blueprint("resident_pages", __name__, url_prefix=PREFIX)
    report_routes(bp, pages, desk, access)
    track_routes(bp, pages, desk, access)
    handling_routes(bp, pages, desk.loop)   # photos a lead sends from dispatch's case page
    contact_routes(bp, pages, desk.loop)    # 回电: the resident's number for the holding lead
    if access is not None:   # SMS sign-in, 我的反映 (needs SANZHANG_SECRET)
        signin_routes(bp, pages, desk, access)
    return [kit_blueprint("resident_kit", PREFIX), bp]
