"""群众点单 on the page: the township's start page and the report form."""
from __future__ import annotations

import secrets

from flask import current_app, redirect, request
from marshmallow import ValidationError

from shared.auth import CSRF_FIELD, page_person

from shared.domain.categories import CATEGORIES
from shared.pages.web import field_errors

from ..loop_errors import LoopError
from ..page_forms import ReportForm, ResidentReportForm
from ..photos import MAX_BYTES, MAX_PHOTOS
from .account import CSRF_FIELD as RESIDENT_CSRF
from .handling import HANDLING
from .session import remember

# The category picker: a picture (kit/icons.svg) and the words people use for it.
WORDS = {"environment": "垃圾、污水、脏乱", "road": "路坏了、路灯、桥", "water": "停水、漏水、下水道",
         "power": "停电、电线", "dispute": "邻里矛盾、纠纷", "hazard": "危房、火灾、塌方",
         "housing": "房屋、物业", "policy": "办事、问政策", "social": "医保、养老、低保",
         "other": "以上都不是"}
CHOICES = [(code, CATEGORIES[code], WORDS.get(code, "")) for code in CATEGORIES]


def report_routes(bp, pages, desk, access=None) -> None:
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
        session = access.session(township) if access else None
        return closed or pages.render("township.html", title=name, township=township, name=name,
                                      masked=access.masked(session) if session else None)

    @bp.get("/<string:township>/report")
    def report_form(township):
        name, closed = township_or_404(township)
        if closed:
            return closed
        if request.args.get("for") == "lead":   # 代办: a lead reports for a resident who cannot
            if _lead(township) is None:
                return redirect("/signin?next=/lead/", 303)
            return _form(pages, township, name, {"submission": secrets.token_hex(16), "on_behalf": "1"}, {})
        return _form(pages, township, name, {"submission": secrets.token_hex(16)}, {},
                     resident=access.session(township) if access else None, access=access)

    @bp.post("/<string:township>/report")
    def report_submit(township):
        name, closed = township_or_404(township)
        if closed:
            return closed
        request.max_content_length = MAX_PHOTOS * MAX_BYTES + 256 * 1024  # before the form is read
        values = request.form.to_dict()
        resident = access.session(township) if access and not values.get("on_behalf") else None
        if resident is not None:   # signed in: the verified phone, "为我家反映"
            return _resident_submit(pages, desk, access, township, name, values, resident)
        channel = "web"
        if values.pop("on_behalf", None):   # 代办: the session's CSRF token is checked by shared.auth
            if _lead(township) is None:
                return redirect("/signin?next=/lead/", 303)
            channel, values["on_behalf"] = "lead", "1"
        values.pop(CSRF_FIELD, None)
        files = [f.read(MAX_BYTES + 1) for f in request.files.getlist("photos") if f.filename]
        try:
            report, token = desk.submit(township, ReportForm().load(values), files, channel=channel)
        # The form comes back as a page (200), not an error response: it keeps what the person typed,
        # their phone number among it, and error bodies never carry a phone number (docs/pages.md).
        except ValidationError as exc:
            return _form(pages, township, name, values, field_errors(exc))
        except LoopError as exc:
            return _form(pages, township, name, values, {exc.field or "form": exc.message})
        resp = redirect(f"{bp.url_prefix}/{township}/track/{report['tracking_no']}", 303)
        remember(resp, report, token)
        return resp


def _lead(township: str):
    """The signed-in lead (page session) of this township, or None."""
    principal = page_person("lead")
    return principal if principal is not None and principal.sees(township) else None


def _resident_submit(pages, desk, access, township, name, values, session):
    """A signed-in resident's report: the session's CSRF value, the verified phone (never typed, never
    put back in the page), and no address for "为我家反映" — dispatch locates the household by the phone."""
    if not access.csrf_ok(session):
        return pages.render("closed.html", status=403, title="页面已过期")
    values.pop(RESIDENT_CSRF, None)
    values.pop("phone", None)
    files = [f.read(MAX_BYTES + 1) for f in request.files.getlist("photos") if f.filename]
    try:
        form = ResidentReportForm().load({**values, "phone": access.signin.phone_of(session)})
        if form["where"] == "home":
            form.pop("address", None)
        report, _ = desk.submit(township, form, files)
    except ValidationError as exc:
        return _form(pages, township, name, values, field_errors(exc), resident=session, access=access)
    except LoopError as exc:
        return _form(pages, township, name, values, {exc.field or "form": exc.message}, resident=session,
                     access=access)
    # No report cookie: the session opens the report (its phone made it), from 我的反映 too.
    return redirect(f"/resident/{township}/track/{report['tracking_no']}", 303)


def _form(pages, township, name, values, errors, status=200, resident=None, access=None):
    proxy = values.get("on_behalf") == "1"
    csrf = current_app.extensions["sanzhang.auth"].issuer.csrf_token(_lead(township).session_id) if proxy else ""
    return pages.render("report.html", status=status, title="代群众反映问题" if proxy else "我要反映问题",
                        **(HANDLING if proxy else {}),
                        township=township, name=name, values=values, errors=errors, choices=CHOICES,
                        max_photos=MAX_PHOTOS, proxy=proxy, csrf=csrf, csrf_field=CSRF_FIELD,
                        resident=access.masked(resident) if resident else None,
                        resident_csrf=access.csrf(resident) if resident else "", resident_csrf_field=RESIDENT_CSRF)
