"""Who is calling a resident endpoint, read from the request: the report's resident token, or a
credential the shared Authenticator knows (services/intake/residents.py explains the proofs)."""
from __future__ import annotations

from flask import request

from shared.auth import current_principal

from .residents import APP_ROLES, RESIDENT_PREFIX, Caller, ResidentTokens


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def caller(tokens: ResidentTokens) -> Caller | None:
    """The caller of a resident endpoint; None without a valid credential (401)."""
    token = bearer()
    if token and token.startswith(RESIDENT_PREFIX):
        claims = tokens.verify(token)
        if not claims:
            return None
        return Caller("resident", township=claims[1], report_id=claims[0])
    principal = current_principal()
    if principal is None:
        return None
    if principal.role in APP_ROLES:
        return Caller("app", principal=principal)
    if principal.role in ("staff", "lead"):
        return Caller(principal.role, principal=principal)
    return Caller("other", principal=principal)
