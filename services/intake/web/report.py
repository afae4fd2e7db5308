"""群众点单 on the page: the township's start page and the report form."""
from __future__ import annotations

import secrets

from flask import redirect, request
from marshmallow import ValidationError

from shared.domain.categories import CATEGORIES
from shared.pages.web import field_errors

from ..loop_errors import LoopError
from ..page_forms import ReportForm
from ..photos import MAX_BYTES, MAX_PHOTOS
from .session import remember

# The category picker: a picture (kit/icons.svg) and the words people use for it.
WORDS = {"environment": "垃圾、污水、脏乱", "road": "路坏了、路灯、桥", "water": "停水、漏水、下水道",
         "power": "停电、电线", "dispute": "邻里矛盾、纠纷", "hazard": "危房、火灾、塌方",
         "housing": "房屋、物业", "policy": "办事、问政策", "social": "医保、养老、低保",
         "other": "以上都不是"}
CHOICES = [(code, CATEGORIES[code], WORDS.get(code, "")) for code in CATEGORIES]


def report_routes(bp, pages, desk) -> None:
    def township_or_404(code: str):
        name = desk.townships.get(code)
        if name is None:
            return None, pages.render("closed.html", status=404, title="暂未开通")
        return name, None

    @bp.get("/")
    def home():
        if len(desk.townships) == 1:
            return redirect(f"{bp.url_prefix}/{next(iter(desk.townships))}/", 303)
        return pages.render("home.html", title="群众服务", townships=desk.townships)

    @bp.get("/<string:township>/")
    def township_home(township):
        name, closed = township_or_404(township)
        return closed or pages.render("township.html", title=name, township=township, name=name)

    @bp.get("/<string:township>/report")
    def report_form(township):
        name, closed = township_or_404(township)
        return closed or _form(pages, township, name, {"submission": secrets.token_hex(16)}, {})

    @bp.post("/<string:township>/report")
    def report_submit(township):
        name, closed = township_or_404(township)
        if closed:
            return closed
        request.max_content_length = MAX_PHOTOS * MAX_BYTES + 256 * 1024  # before the form is read
        values = request.form.to_dict()
        files = [f.read(MAX_BYTES + 1) for f in request.files.getlist("photos") if f.filename]
        try:
            report, token = desk.submit(township, ReportForm().load(values), files)
        # The form comes back as a page (200), not an error response: it keeps what the person typed,
        # their phone number among it, and error bodies never carry a phone number (docs/pages.md).
        except ValidationError as exc:
            return _form(pages, township, name, values, field_errors(exc))
        except LoopError as exc:
            return _form(pages, township, name, values, {exc.field or "form": exc.message})
        resp = redirect(f"{bp.url_prefix}/{township}/track/{report['tracking_no']}", 303)
        remember(resp, report, token)
        return resp


def _form(pages, township, name, values, errors, status=200):
    return pages.render("report.html", status=status, title="我要反映问题", township=township, name=name,
                        values=values, errors=errors, choices=CHOICES, max_photos=MAX_PHOTOS)
