"""The WeCom web sign-in pages (wecom_oauth.py): start at /signin/wecom/<township>, come back at
/signin/wecom/callback. The state is bound to the browser by a short-lived cookie, so a callback
started elsewhere (login CSRF) is refused. Decode, validate, call, map the result."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from flask import Blueprint, redirect, request

from .pages_api import page, signed_in
from .signin import Refused
from .wecom_oauth import OAuthFailed

STATE_COOKIE = "sz_wecom_state"
CODE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _failed(message: str, status: int = 400):
    return page("企业微信登录", f"<p class=err role=alert>{message}</p><p><a href=/signin>用短信验证码登录</a></p>",
                status)


def build_wecom_pages(people) -> Blueprint:
    bp = Blueprint("wecom-signin", __name__)
    secret = people.signin.secret.encode()

    def binding(state: str) -> str:
        return hmac.new(secret, b"wecom-state|" + state.encode(), hashlib.sha256).hexdigest()

    @bp.get("/signin/wecom/<string:township>")
    def start(township):
        if not people.wecom.configured(township):
            return _failed("本镇(街道)未开通企业微信登录，请用短信验证码登录", 404)
        state = f"{township}.{secrets.token_urlsafe(12)}"
        callback = request.url_root.rstrip("/") + "/signin/wecom/callback"
        response = redirect(people.wecom.authorize_url(township, callback, state), code=302)
        response.set_cookie(STATE_COOKIE, binding(state), max_age=600, path="/signin/wecom",
                            secure=people.cookie_secure, httponly=True, samesite="Lax")
        return response

    @bp.get("/signin/wecom/callback")
    def callback():
        state, code = request.args.get("state", ""), request.args.get("code", "")
        township = state.split(".", 1)[0]
        cookie = request.cookies.get(STATE_COOKIE, "")
        if not (cookie and hmac.compare_digest(cookie, binding(state)) and people.wecom.configured(township)):
            return _failed("登录已过期或不是从本页发起，请重新进入")
        if not CODE.match(code):
            return _failed("企业微信没有返回授权码，请从企业微信重新进入")
        try:
            token, _, _ = people.signin.verify_wecom(township, people.wecom.userid(township, code))
        except (OAuthFailed, Refused) as exc:
            return _failed(str(exc.message if isinstance(exc, Refused) else exc), 401)
        response = signed_in(people, token, "/my")
        response.delete_cookie(STATE_COOKIE, path="/signin/wecom")
        return response

    return bp
