"""The department desk (部门工作台), served by escalation under /dept/: after sign-in (a department's
clerk, shared.auth's page session), the cases referred to the department, and on each one the
department's actions — 签收, 进展, 申请延期, 退单, 配合意见, 销号. Plain forms; docs/pages.md."""
from __future__ import annotations

from pathlib import Path

from shared.pages.text import SITES
from shared.pages.web import Pages, kit_blueprint

from .desk import desk_routes

PREFIX = "/dept"


def build_pages(service, issuer) -> list:
    from flask import Blueprint

    if issuer is None:   # sessions need the secret
        return [kit_blueprint("dept_kit", PREFIX)]
    pages = Pages(Path(__file__).parent / "templates", kit=f"{PREFIX}/kit", site=SITES["department"], home=f"{PREFIX}/")
    bp = Blueprint("dept_pages", __name__, url_prefix=PREFIX)
    desk_routes(bp, pages, service, issuer)
    return [kit_blueprint("dept_kit", PREFIX), bp]
