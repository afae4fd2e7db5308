"""The phone-first pages: sign in with a text-message code, then "我的案件". Plain HTML forms that
work without JavaScript; the session is an HttpOnly cookie, every form that writes carries the
session's CSRF token. Decode, validate, call, map the result."""
from __future__ import annotations

import re

from flask import Blueprint, redirect, request
from markupsafe import escape
from marshmallow import ValidationError

from shared.auth import (CSRF_FIELD, DEV_SESSION_COOKIE, SESSION_COOKIE, current_principal)
from shared.domain.categories import CATEGORIES

from .signin import Refused
from .signin_schemas import CodeIn, VerifyIn
from .transitions import STATUS_TEXT

SAFE_NEXT = re.compile(r"^/(?!/)[A-Za-z0-9/_\-.]*$")
STYLE = ("body{font:17px/1.5 sans-serif;max-width:32em;margin:1em auto;padding:0 1em}"
         "input,button{font-size:1.1em;padding:.5em;width:100%;box-sizing:border-box;margin:.3em 0}"
         ".err{color:#b00020}.case{border-bottom:1px solid #ddd;padding:.6em 0}small{color:#555}")


def page(title: str, body: str, status: int = 200):
    html = (f"<!doctype html><html lang=zh-CN><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width,initial-scale=1'><title>{escape(title)}</title><style>{STYLE}</style>"
            f"<h1>{escape(title)}</h1>{body}</html>")
    return html, status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                          "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def _next() -> str:
    wanted = request.values.get("next") or "/my"
    return wanted if SAFE_NEXT.match(wanted) else "/my"


def _error(message: str | None) -> str:
    return f"<p class=err role=alert>{escape(message)}</p>" if message else ""


def phone_form(message: str | None = None, status: int = 200):
    return page("登录三长制", f"""{_error(message)}
<form method=post action=/signin/code><label>手机号（账号或花名册上登记的号码）
<input name=phone inputmode=numeric autocomplete=tel maxlength=20 required></label>
<input type=hidden name=next value="{escape(_next())}"><button>获取验证码</button></form>""", status)


def code_form(challenge_id: str, message: str | None = None, status: int = 200):
    return page("输入验证码", f"""{_error(message)}<p>验证码已通过短信发送（如该号码已登记），5分钟内有效。</p>
<form method=post action=/signin/verify><label>6位验证码
<input name=sms_code inputmode=numeric autocomplete=one-time-code maxlength=6 required></label>
<input type=hidden name=challenge_id value="{escape(challenge_id)}">
<input type=hidden name=next value="{escape(_next())}"><button>登录</button></form>
<p><a href="/signin?next={escape(_next())}">重新获取验证码</a></p>""", status)


def signed_in(people, token: str, where: str):
    """The redirect that ends a sign-in, with the new session's cookie. A new session id at every
    sign-in: a cookie planted before it is simply replaced (no fixation)."""
    response = redirect(where, code=303)
    name = SESSION_COOKIE if people.cookie_secure else DEV_SESSION_COOKIE
    response.set_cookie(name, token, max_age=int(people.sessions.ttl.total_seconds()), path="/",
                        secure=people.cookie_secure, httponly=True, samesite="Lax")
    return response


def _first_error(exc: ValidationError) -> str:
    messages = exc.normalized_messages()
    for field in ("phone", "sms_code", "challenge_id"):
        if field in messages:
            return str(messages[field][0])
    return "请检查填写的内容"


def build_pages(people) -> Blueprint:
    bp = Blueprint("signin-pages", __name__)
    _signin_routes(bp, people)
    _my_routes(bp, people)
    _link_routes(bp, people)
    return bp


def _signin_routes(bp: Blueprint, people) -> None:
    @bp.get("/signin")
    def signin_page():
        return phone_form()

    @bp.post("/signin/code")
    def ask_code():
        try:
            body = CodeIn().load({"phone": request.form.get("phone", "")})
            return code_form(people.signin.request_code(body["phone"], request.remote_addr or "-")["challenge_id"])
        except ValidationError as exc:
            return phone_form(_first_error(exc), 400)
        except Refused as exc:
            return phone_form(exc.message, exc.status)

    @bp.post("/signin/verify")
    def enter_code():
        challenge_id = request.form.get("challenge_id", "")
        try:
            body = VerifyIn().load({"challenge_id": challenge_id, "sms_code": request.form.get("sms_code", "")})
            token, _, session = people.signin.verify(body["challenge_id"], body["sms_code"])
        except ValidationError as exc:
            return code_form(challenge_id[:64], _first_error(exc), 400)
        except Refused as exc:
            return code_form(challenge_id[:64], exc.message, exc.status)
        return signed_in(people, token, _next())


def _my_routes(bp: Blueprint, people) -> None:
    @bp.get("/my")
    def my_cases():
        principal = current_principal()
        if principal is None or not principal.session_id:
            return redirect("/signin?next=/my", code=303)
        cases = people.desk.held(principal, "open", 100, 0) if principal.role in ("lead", "staff") else []
        rows = "".join(
            f"<div class=case><b>{escape(CATEGORIES.get(c.get('category'), c.get('category') or ''))}</b> "
            f"{escape(STATUS_TEXT.get(c['status'], c['status']))}<br>{escape(c.get('summary') or '')}<br>"
            f"<small>查询码 {escape(c.get('tracking_no') or '')} · 时限 {escape((c.get('deadline') or '')[:16])}"
            f"</small></div>" for c in cases) or "<p>目前没有在办的案件。</p>"
        csrf = escape(people.sessions.issuer.csrf_token(principal.session_id))
        return page("我的案件", f"""<p>{escape(principal.name or '')}，您好。</p>{rows}
<form method=post action=/signout><input type=hidden name={CSRF_FIELD} value="{csrf}"><button>退出登录</button></form>
<form method=post action=/signout/everywhere><input type=hidden name={CSRF_FIELD} value="{csrf}">
<button>在所有设备上退出</button></form>""")

    @bp.post("/signout")
    @bp.post("/signout/everywhere")
    def sign_out():
        principal = current_principal()   # a cookie write: the CSRF token is checked here
        if principal is not None and principal.session_id:
            if request.path.endswith("everywhere"):
                people.sessions.revoke_account(principal.account_id, "signed_out_everywhere")
            else:
                people.sessions.revoke(principal.session_id, "signed_out")
        response = redirect("/signin", code=303)
        for name in (SESSION_COOKIE, DEV_SESSION_COOKIE):
            response.delete_cookie(name, path="/", secure=name.startswith("__Host-"), httponly=True, samesite="Lax")
        return response


def _case_html(case: dict) -> str:
    category = CATEGORIES.get(case.get("category"), case.get("category") or "")
    return (f"<p><b>{escape(category)}</b> {escape(STATUS_TEXT.get(case['status'], case['status']))}</p>"
            f"<p>{escape(case.get('summary') or '')}</p><p><small>查询码 {escape(case.get('tracking_no') or '')}"
            f" · 时限 {escape((case.get('deadline') or '')[:16])} · {escape(case.get('unit_name') or '')}</small></p>"
            f"<p><a href=/my>我的案件</a></p>")


def _link_routes(bp: Blueprint, people) -> None:
    @bp.get("/l/<string:code>")
    def short_link(code):
        """A message's short link: sign-in first; then the case, only for someone who may see it."""
        principal = current_principal()
        if principal is None or not principal.session_id:
            wanted = f"/l/{code}" if SAFE_NEXT.match(f"/l/{code}") else "/my"
            return redirect(f"/signin?next={wanted}", code=303)
        case = people.links.open(principal, code)
        if case is None:
            return page("链接无效", "<p>链接无效，或您无权查看该案件。</p><p><a href=/my>我的案件</a></p>", 404)
        if principal.role in ("lead", "staff"):   # the workbench's case page (web/lead.py)
            return redirect(f"/lead/cases/{case['_id']}", code=303)
        return page("案件详情", _case_html(case))
