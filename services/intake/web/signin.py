"""群众登录 on the page: phone → the code texted to it → signed in; 我的反映; sign-out (here or on
every device). Every POST carries a CSRF value; a failed step re-renders its form with the message
next to the field (the phone form answers 200: it holds the phone just typed, and error responses
never carry a phone number)."""
from __future__ import annotations

from flask import redirect, request
from marshmallow import ValidationError

from shared.domain import phones
from shared.domain.categories import CATEGORIES
from shared.pages.web import field_errors

from ..page_forms import SigninCodeForm, SigninPhoneForm
from ..reports import STATUS_NAMES
from ..resident_signin import Refused
from .account import CSRF_FIELD, NEXT

EXPIRED = "页面已过期，请重新打开登录页"


def signin_routes(bp, pages, desk, access) -> None:
    base = bp.url_prefix

    def closed(township):
        return None if township in desk.townships else pages.render("closed.html", status=404, title="暂未开通")

    def wanted(township) -> str:
        where = request.values.get("next")
        return f"{base}/{township}/{where if where in NEXT else 'mine'}"

    def phone_page(township, values, errors, status=200, pending=None):
        pending = pending or access.next_pending(township)
        resp = pages.render("signin.html", status=status, title="登录", township=township,
                            name=desk.townships[township], values=values, errors=errors,
                            csrf=access.pending_csrf(pending), csrf_field=CSRF_FIELD,
                            next=request.values.get("next") if request.values.get("next") in NEXT else "mine")
        access.store_pending(resp, pending)
        return resp

    @bp.get("/<string:township>/signin")
    def signin_form(township):
        if closed(township):
            return closed(township)
        # Shown even to a signed-in browser: signing in again replaces whatever session it holds
        # (one planted by someone else included) with a new one.
        return phone_page(township, {}, {})

    @bp.post("/<string:township>/signin")
    def signin_phone(township):
        if closed(township):
            return closed(township)
        pending, values = access.pending(township), {"phone": request.form.get("phone", "")[:20]}
        if not access.pending_csrf_ok(pending):   # an error response: the phone typed is not kept
            return phone_page(township, {}, {"form": EXPIRED}, status=403)
        try:
            form = SigninPhoneForm().load(request.form.to_dict())
            asked = access.signin.request_code(township, form["phone"], request.remote_addr or "-")
        except ValidationError as exc:
            return phone_page(township, values, field_errors(exc), pending=pending)
        except Refused as exc:
            return phone_page(township, values, {"phone": exc.message}, pending=pending)
        resp = redirect(f"{base}/{township}/signin/code", 303)
        access.store_pending(resp, {**pending, "c": asked["challenge_id"], "m": phones.mask(form["phone"]),
                                    "x": wanted(township)})
        return resp

    @bp.get("/<string:township>/signin/code")
    def code_form(township):
        pending = access.pending(township)
        if closed(township) or not pending or not pending.get("c"):
            return redirect(f"{base}/{township}/signin", 303)
        return _code_page(pages, access, township, pending, {})

    @bp.post("/<string:township>/signin/code")
    def code_enter(township):
        pending = access.pending(township)
        if closed(township) or not pending or not pending.get("c"):
            return redirect(f"{base}/{township}/signin", 303)
        if not access.pending_csrf_ok(pending):
            return _code_page(pages, access, township, pending, {"form": EXPIRED}, 403)
        try:
            form = SigninCodeForm().load(request.form.to_dict())
            token, _ = access.signin.verify(township, pending["c"], form["sms_code"])
        except ValidationError as exc:
            return _code_page(pages, access, township, pending, field_errors(exc), 422)
        except Refused as exc:
            return _code_page(pages, access, township, pending, {"sms_code": exc.message}, exc.status)
        resp = redirect(pending.get("x") or f"{base}/{township}/mine", 303)
        access.start_session(resp, token)   # a new session id; the sign-in cookie is dropped
        return resp

    account_routes(bp, pages, desk, access, closed)


def _code_page(pages, access, township, pending, errors, status=200):
    return pages.render("signin_code.html", status=status, title="输入验证码", township=township,
                        masked=pending.get("m") or "", errors=errors, values={},
                        csrf=access.pending_csrf(pending), csrf_field=CSRF_FIELD)


def account_routes(bp, pages, desk, access, closed) -> None:
    """我的反映 and signing out."""
    base = bp.url_prefix

    @bp.post("/<string:township>/signout")
    @bp.post("/<string:township>/signout/everywhere")
    def sign_out(township):
        session = access.session()
        if session is None or not access.csrf_ok(session):
            return pages.render("closed.html", status=403, title="页面已过期")
        if request.path.endswith("/everywhere"):
            access.sessions.revoke_phone(session["phone_key"], "signed_out_everywhere")
        else:
            access.sessions.revoke(session["_id"], "signed_out")
        resp = redirect(f"{base}/{township}/", 303)
        access.end_session(resp)
        return resp

    @bp.get("/<string:township>/mine")
    def mine(township):
        if closed(township):
            return closed(township)
        session = access.session(township)
        if session is None:
            return redirect(f"{base}/{township}/signin?next=mine", 303)
        rows = [{"tracking_no": r["tracking_no"], "category": CATEGORIES.get(r["category"], r["category"]),
                 "description": r["description"], "status": r["status"],
                 "status_text": STATUS_NAMES.get(r["status"], r["status"]), "submitted_at": r["submitted_at"]}
                for r in access.service.by_phone(township, session["phone_key"])]
        return pages.render("mine.html", title="我的反映", township=township, name=desk.townships[township],
                            rows=rows, masked=access.masked(session), csrf=access.csrf(session),
                            csrf_field=CSRF_FIELD)
