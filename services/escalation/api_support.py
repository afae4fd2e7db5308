"""What escalation's HTTP modules share: the error body, who may administer a city, the
department a path names, and issuing or revoking a department's credential."""
from __future__ import annotations

from flask import jsonify
from flask_smorest import abort
from werkzeug.http import HTTP_STATUS_CODES

from shared.auth import current_principal
from shared.web import masked

from .directory import DirectoryError
from .idempotency import MAX_KEY
from .service import EscalationService

MAX_MATRIX_BYTES = 5 * 1024 * 1024
STAFF = ("operator", "staff")
CONFLICT = "当前状态不允许此操作：message 说明原因，error_code 为机器可读代码"
IDEMPOTENCY_HEADER = {
    "in": "header", "name": "Idempotency-Key", "required": False, "schema": {"type": "string", "maxLength": MAX_KEY},
    "description": "重放保护：同一部门用同一个键重发同一请求，返回第一次的结果且不再改变任何数据（保留24小时）",
    "example": "3b1f6c1e-0d55-4f57-9a4c-5b3b0c7a9e21",
}


def error_body(status: int, message: str, *, code: str | None = None, field: str | None = None,
               location: str = "json") -> dict:
    body = {"code": status, "status": HTTP_STATUS_CODES.get(status, "Error"), "message": message}
    if code:
        body["error_code"] = code
    if field:
        body["errors"] = {location: {field: [message]}}
    return body


def respond(status: int, body: dict, replayed: bool = False):
    # An error may quote what was sent (a name, a cell of the matrix): phone numbers in it are masked.
    response = jsonify(masked(body) if status >= 400 else body)
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def fail(status: int, message: str, **kw):
    return respond(status, error_body(status, message, **kw))


# -- who may administer a city ---------------------------------------------------------------------

def _in_city(principal, city: str) -> bool:
    return any(t.startswith(city) for t in principal.townships)


def city_reader(city: str):
    principal = current_principal()
    if principal.role == "operator" or (principal.role == "staff" and _in_city(principal, city)):
        return principal
    abort(404, message="未找到")


def city_admin(city: str):
    principal = city_reader(city)
    if principal.role != "operator" and "city" not in principal.scopes:
        abort(403, message="需要市级管理权限（staff 凭证须含 city 范围）")
    return principal


def check_city(city: str) -> None:
    if not (len(city) == 6 and city.isdigit()):
        abort(404, message="未找到")


def department_or_404(service: EscalationService, dept_id: str) -> dict:
    dept = service.directory.department(dept_id)
    if dept is None:
        # The same answer as another city's department (city_reader): existence does not leak.
        abort(404, message="未找到")
    return dept


def with_effective(service: EscalationService, dept: dict) -> dict:
    return {**dept, "effective_sla": service.policy_for(dept).as_text()}


def issue_credential_for(service: EscalationService, department_id: str, label: str | None, actor: str):
    try:
        record, token = service.directory.issue_credential(department_id, label, actor=actor)
    except DirectoryError as exc:
        return fail(409, exc.message, code=exc.code)
    return {**record, "secret": token.split(".", 1)[1], "token": token}


def revoke_credential_of(service: EscalationService, department_id: str, key_id: str, actor: str):
    try:
        return service.directory.revoke_credential(department_id, key_id, actor=actor)
    except LookupError:
        abort(404, message="未找到该凭证")
