"""Credentials and the walls between tenants and roles.

Staff, lead and client-app tokens are signed (itsdangerous, Flask's own signing library) with
SANZHANG_SECRET, so any service verifies them without a shared credentials database. The
operator's token is SANZHANG_ADMIN_TOKEN. Departments' machine credentials are stored hashed by
the escalation service, which owns departments.
"""
from __future__ import annotations

import functools
import hmac
from dataclasses import asdict, dataclass, field

from flask import current_app, g, request
from flask_smorest import abort
from itsdangerous import BadSignature, URLSafeSerializer

ROLES = ("operator", "staff", "lead", "client", "department")
_SALT = "sanzhang.token.v1"


@dataclass(frozen=True)
class Principal:
    role: str
    townships: tuple[str, ...] = ()
    unit_id: str | None = None       # a lead's post
    department_id: str | None = None
    name: str | None = None
    scopes: tuple[str, ...] = field(default_factory=tuple)

    def sees(self, township: str) -> bool:
        return self.role == "operator" or township in self.townships


class TokenIssuer:
    def __init__(self, secret: str):
        if not secret or len(secret) < 16:
            raise ValueError("SANZHANG_SECRET must be at least 16 characters")
        self._serializer = URLSafeSerializer(secret, salt=_SALT)

    def issue(self, principal: Principal) -> str:
        claims = {k: v for k, v in asdict(principal).items() if v not in (None, (), [])}
        return "sz1." + self._serializer.dumps(claims)

    def verify(self, token: str) -> Principal | None:
        if not token.startswith("sz1."):
            return None
        try:
            claims = self._serializer.loads(token[4:])
        except BadSignature:
            return None
        if claims.get("role") not in ROLES or claims.get("role") == "operator":
            return None
        return Principal(role=claims["role"], townships=tuple(claims.get("townships", ())),
                         unit_id=claims.get("unit_id"), department_id=claims.get("department_id"),
                         name=claims.get("name"), scopes=tuple(claims.get("scopes", ())))


class Authenticator:
    """Resolves the bearer token of a request; extra resolvers (departments) can be added."""

    def __init__(self, admin_token: str | None, issuer: TokenIssuer | None):
        self.admin_token = admin_token
        self.issuer = issuer
        self.resolvers = []

    def resolve(self, token: str) -> Principal | None:
        if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Principal(role="operator", name="operator")
        if self.issuer:
            principal = self.issuer.verify(token)
            if principal:
                return principal
        for resolver in self.resolvers:
            principal = resolver(token)
            if principal:
                return principal
        return None


def current_principal() -> Principal | None:
    if "principal" not in g:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        token = token or request.args.get("api_key") or (request.form.get("api_key") if request.form else None)
        g.principal = current_app.extensions["sanzhang.auth"].resolve(token) if token else None
    return g.principal


def require(*roles: str):
    """401 without a valid credential, 403 when the role may not use this endpoint."""
    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            principal = current_principal()
            if principal is None:
                abort(401, message="需要有效的凭证 (Authorization: Bearer <token>)")
            if roles and principal.role not in roles:
                abort(403, message=f"角色 {principal.role} 无权访问此接口")
            return view(*args, **kwargs)
        return inner
    return wrap


def require_township(township: str) -> Principal:
    """A township the caller may not see does not exist for it (404, never 403)."""
    principal = current_principal()
    if principal is None or not principal.sees(township):
        abort(404, message="未找到")
    return principal
