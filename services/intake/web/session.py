"""The browser's hold on one report: its resident token in a cookie for that report only."""
from __future__ import annotations

from flask import request

MAX_AGE = 90 * 24 * 3600


def cookie_name(tracking_no: str) -> str:
    return f"szr_{tracking_no.upper()}"


def remember(resp, report: dict, token: str) -> None:
    secure = request.is_secure or request.headers.get("X-Forwarded-Proto") == "https"
    resp.set_cookie(cookie_name(report["tracking_no"]), token, max_age=MAX_AGE, path="/resident/",
                    httponly=True, samesite="Lax", secure=secure)


def held_token(tracking_no: str) -> str | None:
    return request.cookies.get(cookie_name(tracking_no))
