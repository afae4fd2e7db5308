"""HTTP for sign-in and sessions: ask for a code, enter it, who am I, sign out (here or everywhere).
Decode, validate, call, map the result."""
from __future__ import annotations

from flask import request
from flask_smorest import Blueprint, abort

from shared.auth import current_principal, require

from .signin import Refused, SignIn
from .signin_schemas import ChallengeOut, CodeIn, MeOut, SessionOut, SignedOutOut, VerifyIn


def refused(exc: Refused):
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    field = "sms_code" if exc.status == 401 else "phone"
    abort(exc.status, message=exc.message, errors={"json": {field: [exc.message]}}, headers=headers)


def session_out(token: str, principal, session: dict) -> dict:
    return {"token": token, "expires_at": session["expires_at"], "role": principal.role, "name": principal.name,
            "townships": list(principal.townships), "unit_id": principal.unit_id,
            "department_id": principal.department_id}


def build_signin_blueprint(signin: SignIn, sessions) -> Blueprint:
    bp = Blueprint("signin", __name__, url_prefix="/api/v1", description="登录：短信验证码、会话与退出")

    @bp.route("/signin/code", methods=["POST"])
    @bp.doc(security=[])
    @bp.arguments(CodeIn)
    @bp.response(202, ChallengeOut)
    @bp.alt_response(429, description="获取过于频繁：每个手机号每分钟1次、每小时5次，每个网络地址另有上限")
    def request_code(body):
        """获取登录验证码（发送到账号或花名册上登记的手机）。未登记的号码得到完全相同的答复。"""
        try:
            return signin.request_code(body["phone"], request.remote_addr or "-")
        except Refused as exc:
            refused(exc)

    @bp.route("/signin/verify", methods=["POST"])
    @bp.doc(security=[])
    @bp.arguments(VerifyIn)
    @bp.response(200, SessionOut)
    @bp.alt_response(401, description="验证码不正确、已过期、已使用或已作废（message 说明怎么办）")
    def verify(body):
        """用验证码登录，得到接口用的令牌（Bearer）。验证码5分钟内有效、只能用一次，输错5次作废。"""
        try:
            token, principal, session = signin.verify(body["challenge_id"], body["sms_code"])
        except Refused as exc:
            refused(exc)
        return session_out(token, principal, session)

    @bp.route("/me", methods=["GET"])
    @require()
    @bp.response(200, MeOut)
    def me():
        """当前凭证是谁"""
        p = current_principal()
        csrf = sessions.issuer.csrf_token(p.session_id) if p.session_id else None
        return {"role": p.role, "name": p.name, "townships": list(p.townships), "unit_id": p.unit_id,
                "department_id": p.department_id, "scopes": list(p.scopes), "session": bool(p.session_id),
                "csrf_token": csrf}

    @bp.route("/signout", methods=["POST"])
    @require()
    @bp.response(200, SignedOutOut)
    def signout():
        """退出本次登录（令牌立即失效）"""
        return {"ended": int(sessions.revoke(_session_id(), "signed_out"))}

    @bp.route("/signout/everywhere", methods=["POST"])
    @require()
    @bp.response(200, SignedOutOut)
    def signout_everywhere():
        """在所有设备上退出（本账号的全部会话立即失效）"""
        _session_id()
        return {"ended": sessions.revoke_account(current_principal().account_id, "signed_out_everywhere")}

    return bp


def _session_id() -> str:
    principal = current_principal()
    if not principal.session_id:
        abort(403, message="此凭证不是登录会话（机器凭证请由管理员吊销），无需退出")
    return principal.session_id
