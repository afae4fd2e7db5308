"""HTTP for people's accounts: the operator adds township and city administrators, a township's
administrator its staff, a city's administrator its departments' clerks. Removing an account ends
its sessions at once. Decode, validate, call, map the result."""
from __future__ import annotations

from flask_smorest import Blueprint, abort

from shared.auth import current_principal, require

from .accounts import Accounts, Conflict, Invisible, NotAllowed
from .signin_schemas import AccountIn, AccountOut, AccountPatch, AccountQuery

MANAGERS = ("operator", "staff")


def _mapped(fn, *args):
    try:
        return fn(current_principal(), *args)
    except Invisible:
        abort(404, message="未找到")
    except NotAllowed as exc:
        abort(403, message=str(exc))
    except Conflict as exc:
        abort(409, message=str(exc), errors={"json": {"phone": [str(exc)]}})


def build_accounts_blueprint(accounts: Accounts, sessions) -> Blueprint:
    bp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="账号：管理员、工作人员、部门经办人")

    @bp.route("/accounts", methods=["POST"])
    @require(*MANAGERS)
    @bp.arguments(AccountIn)
    @bp.response(201, AccountOut)
    @bp.alt_response(409, description="该手机号已有账号")
    def create(body):
        """添加账号（运维：管理员；镇(街道)管理员：本镇工作人员；市级管理员：本市部门经办人）"""
        return _mapped(accounts.create, body)

    @bp.route("/accounts", methods=["GET"])
    @require(*MANAGERS)
    @bp.arguments(AccountQuery, location="query")
    @bp.response(200, AccountOut(many=True))
    def listed(query):
        """本镇(街道)或本市的账号（手机号脱敏）。花名册上的三长不是账号，见组织架构。"""
        if not (query.get("township") or query.get("city")):
            abort(422, message="请指定 township 或 city", errors={"query": {"township": ["请指定 township 或 city"]}})
        return _mapped(accounts.listed, query.get("township"), query.get("city"))

    @bp.route("/accounts/<string:account_id>", methods=["PATCH"])
    @require(*MANAGERS)
    @bp.arguments(AccountPatch)
    @bp.response(200, AccountOut)
    @bp.alt_response(409, description="该手机号已有账号")
    def change(body, account_id):
        """修改账号：姓名、手机号、企业微信账号、职务。换手机号后，原有登录全部失效。"""
        changed, new_phone = _mapped(accounts.change, account_id, body)
        if new_phone:
            sessions.revoke_account(changed["_id"], "phone_changed")
        return changed

    @bp.route("/accounts/<string:account_id>", methods=["DELETE"])
    @require(*MANAGERS)
    @bp.response(204)
    def remove(account_id):
        """删除账号：其全部登录会话立即失效"""
        removed = _mapped(accounts.remove, account_id)
        sessions.revoke_account(removed["_id"], "account_removed")

    return bp
