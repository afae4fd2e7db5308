"""dispatch's pages: the entry page at the system's root (who are you → your page) and the township
staff's start page (their townships' boards). The kit is served under /pages/kit/."""
from __future__ import annotations

from pathlib import Path

from shared.pages.web import Pages, kit_blueprint

from .entry import entry_routes

PREFIX = "/pages"


def build_pages(org) -> list:
    from flask import Blueprint

    pages = Pages(Path(__file__).parent / "templates", kit=f"{PREFIX}/kit", site="诉求办理")
    bp = Blueprint("entry_pages", __name__)
    entry_routes(bp, pages, org)
    return [kit_blueprint("dispatch_kit", PREFIX), bp]
