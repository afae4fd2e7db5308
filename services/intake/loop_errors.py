"""The resident loop's refusals, each with the HTTP status the edge answers with."""
from __future__ import annotations

NOT_FOUND = "未找到该诉求，或查询码与手机号后四位不符"   # one answer for "no such report" and "not yours"


class LoopError(Exception):
    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotVisible(LoopError):
    status = 404


class Forbidden(LoopError):
    status = 403


class Conflict(LoopError):
    status = 409


class BadInput(LoopError):
    status = 422


class TooLarge(LoopError):
    status = 413


class Unsupported(LoopError):
    status = 415
