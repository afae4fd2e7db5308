"""The HTTP edge of the page kit: render a page from a service's templates and the shared layout,
serve the kit's files, and turn a form's validation errors into one message per field.

Pages are plain HTML forms answered by the server with a page (they work without scripts); nothing
is fetched from anywhere but the service that serves the page (the Content-Security-Policy below
says so to the browser too)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from marshmallow import ValidationError

from .text import local_iso, local_time

HERE = Path(__file__).parent
STATIC = HERE / "static"
KIT_FILES = ("kit.css", "kit.js", "icons.svg")
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


class Pages:
    """One service's pages: its own templates first, then the shared layout (``base.html``)."""

    def __init__(self, templates: Path, kit: str, site: str, home: str = "/"):
        self.env = Environment(loader=ChoiceLoader([FileSystemLoader(str(templates)),
                                                    FileSystemLoader(str(HERE / "templates"))]),
                               autoescape=select_autoescape(default=True, default_for_string=True))
        self.env.filters["local_time"] = local_time
        self.env.filters["local_iso"] = local_iso
        self.defaults = {"kit": kit, "site": site, "home": home}

    def render(self, template: str, status: int = 200, headers: dict | None = None, **context) -> Response:
        html = self.env.get_template(template).render(**{**self.defaults, **context})
        return Response(html, status=status, mimetype="text/html", headers={**HEADERS, **(headers or {})})


def kit_blueprint(name: str, url_prefix: str) -> Blueprint:
    """Serves the kit's files at ``<url_prefix>/kit/<file>``: each service under its own prefix."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix)

    @bp.get("/kit/<string:filename>")
    def kit_file(filename):
        if filename not in KIT_FILES:
            return Response("未找到", status=404, mimetype="text/plain")
        resp = send_from_directory(STATIC, filename, max_age=3600)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    return bp


def field_errors(exc: ValidationError) -> dict[str, str]:
    """marshmallow's messages → the first message of each field (``_schema`` under ``form``)."""
    out: dict[str, str] = {}
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    for name, value in messages.items():
        while isinstance(value, (list, dict)) and value:
            value = value[0] if isinstance(value, list) else next(iter(value.values()))
        out["form" if name == "_schema" else name] = str(value)
    return out
