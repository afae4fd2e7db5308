"""Credentials and the walls between tenants and roles.

Staff, lead and client-app tokens are signed (itsdangerous, Flask's own signing library) with
SANZHANG_SECRET, so any service verifies them without a shared credentials database. The
operator's token is SANZHANG_ADMIN_TOKEN. Departments' machine credentials are stored hashed by
the escalation service, which owns departments.

People's sessions (sign-in with a one-time code, services/dispatch/signin.py) are ``sz2.`` tokens:
the same signature plus a session id, the account and an expiry. They travel as a bearer token
(the API) or in an HttpOnly cookie (pages); a cookie-authenticated write must carry the session's
CSRF token. Every service checks a session against its deny table (``session_checks``), so a
revoked session stops working everywhere (docs/sign-in.md).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import asdict, dataclass, field

from flask import current_app, g, request
from flask_smorest import abort
from itsdangerous import BadSignature, URLSafeSerializer

ROLES = ("operator", "staff", "lead", "client", "department")
_SALT = "sanzhang.token.v1"
SESSION_PREFIX = "sz2."
# The page session's cookie: __Host- (Secure, Path=/, no Domain); plain http on localhost (the demo)
# uses the unprefixed name, which browsers accept without Secure.
SESSION_COOKIE = "__Host-sz_session"
DEV_SESSION_COOKIE = "sz_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Principal:
    role: str
    townships: tuple[str, ...] = ()
    unit_id: str | None = None       # a lead's post
    department_id: str | None = None
    name: str | None = None
    scopes: tuple[str, ...] = field(default_factory=tuple)
    session_id: str | None = None    # a person's signed-in session (sz2 tokens)
    account_id: str | None = None

    def sees(self, township: str) -> bool:
        return self.role == "operator" or township in self.townships


CHECKED_TOKENS = 4096  # signatures remembered per process (TokenIssuer.verify)


class TokenIssuer:
    def __init__(self, secret: str):
        if not secret or len(secret) < 16:
            raise ValueError("SANZHANG_SECRET must be at least 16 characters")
        self._serializer = URLSafeSerializer(secret, salt=_SALT)
        # token -> its claims, once its signature was checked: a client sends the same token with
        # every request, and checking it again (HMAC, base64, JSON) was 4-5 % of intake's accept
        # path (issue 16). Only the signature check is remembered; role, expiry and the session's
        # revocation are judged on every call. Bounded: emptied when full.
        self._checked: dict[str, object] = {}
        self._csrf_key = hashlib.sha256(b"sanzhang/csrf/v1|" + secret.encode()).digest()

    def issue(self, principal: Principal) -> str:
        claims = {k: v for k, v in asdict(principal).items() if v not in (None, (), [])}
        return "sz1." + self._serializer.dumps(claims)

    def issue_session(self, principal: Principal, expires_at: float) -> str:
        """A person's session token; ``principal`` carries its session and account ids."""
        if not principal.session_id:
            raise ValueError("a session token needs a session id")
        claims = {k: v for k, v in asdict(principal).items() if v not in (None, (), [])}
        claims["exp"] = int(expires_at)
        return SESSION_PREFIX + self._serializer.dumps(claims)

    def csrf_token(self, session_id: str) -> str:
        """The session's synchronizer token: derived, so nothing more is stored."""
        return hmac.new(self._csrf_key, session_id.encode(), hashlib.sha256).hexdigest()[:32]

    def verify(self, token: str, now: float | None = None) -> Principal | None:
        session = token.startswith(SESSION_PREFIX)
        if not (token.startswith("sz1.") or session):
            return None
        claims = self._checked.get(token)
        if claims is None:
            try:
                claims = self._serializer.loads(token[4:])
            except BadSignature:
                return None
            if len(self._checked) >= CHECKED_TOKENS:
                self._checked.clear()
            self._checked[token] = claims
        if not isinstance(claims, dict) or claims.get("role") not in ROLES or claims.get("role") == "operator":
            return None
        if session and (not claims.get("session_id") or now is None or claims.get("exp", 0) <= now):
            return None
        if not session and claims.get("session_id"):
            return None
        return Principal(role=claims["role"], townships=tuple(claims.get("townships", ())),
                         unit_id=claims.get("unit_id"), department_id=claims.get("department_id"),
                         name=claims.get("name"), scopes=tuple(claims.get("scopes", ())),
                         session_id=claims.get("session_id"), account_id=claims.get("account_id"))


class Authenticator:
    """Resolves the bearer token of a request; extra resolvers (departments) can be added."""

    def __init__(self, admin_token: str | None, issuer: TokenIssuer | None, clock=None):
        self.admin_token = admin_token
        self.issuer = issuer
        self.clock = clock
        self.resolvers = []
        # Each a callable(Principal) -> bool: False when the session is revoked (every service's
        # deny table; dispatch's sessions). A session passes only if every check lets it.
        self.session_checks = []

    def resolve(self, token: str) -> Principal | None:
        if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Principal(role="operator", name="operator")
        if self.issuer:
            now = self.clock.now().timestamp() if self.clock else None
            principal = self.issuer.verify(token, now)
            if principal and principal.session_id:
                return principal if all(check(principal) for check in self.session_checks) else None
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
        g.principal = current_app.extensions["sanzhang.auth"].resolve(token) if token else _cookie_principal()
    return g.principal


def page_person(*roles: str) -> Principal | None:
    """The person signed in on a page (a session, not an API token) in one of ``roles``, or None:
    every signed-in page (the leads', the staff's, the departments' desk, photos) asks this, and a
    bearer token without a session never opens a page meant for a person."""
    principal = current_principal()
    if principal is None or not principal.session_id or principal.role not in roles:
        return None
    return principal


def session_cookie() -> str | None:
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(DEV_SESSION_COOKIE)


def _cookie_principal() -> Principal | None:
    """The page session. A write it authenticates must carry the session's CSRF token (header or
    form field): another site's form can make the browser send the cookie, never the token."""
    token = session_cookie()
    if not token or not token.startswith(SESSION_PREFIX):
        return None
    auth = current_app.extensions["sanzhang.auth"]
    principal = auth.resolve(token)
    if principal is None or request.method not in WRITE_METHODS:
        return principal
    sent = request.headers.get(CSRF_HEADER) or (request.form.get(CSRF_FIELD) if request.form else None) or ""
    if not hmac.compare_digest(sent.encode(), auth.issuer.csrf_token(principal.session_id).encode()):
        abort(403, message="缺少或错误的 CSRF 令牌：请刷新页面后重试（接口调用请用 Authorization: Bearer）")
    return principal


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
