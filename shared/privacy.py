"""Phone numbers are personal data: validated at the edge, masked wherever a person or a log reads them."""
from __future__ import annotations

import logging
import re

MOBILE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
# Anything that looks like a mainland mobile or a landline inside free text.
# ASCII letters count as part of a word so hex ids (which may hold 11-digit runs) are left alone.
_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(1[3-9]\d)(\d{4})(\d{4})(?![0-9A-Za-z])"
                      r"|(?<![0-9A-Za-z])(0\d{2,3}-?)(\d{3,4})(\d{4})(?![0-9A-Za-z])")
# What is_valid_phone accepts, for documents (OpenAPI patterns); spaces and brackets are also dropped.
PHONE_PATTERN = r"^(\+86)?1[3-9]\d{9}$|^0\d{2,3}-?\d{7,8}$"
FULL_NUMBER = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")


def normalise_phone(raw: str) -> str:
    text = re.sub(r"[\s()（）]", "", raw or "")
    if text.startswith("+86"):
        text = text[3:]
    if MOBILE.match(text.replace("-", "")):
        return text.replace("-", "")
    return text


def is_valid_phone(raw: str) -> bool:
    text = normalise_phone(raw)
    return bool(MOBILE.match(text) or LANDLINE.match(text))


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    text = normalise_phone(phone)
    if len(text) >= 7:
        return text[:3] + "****" + text[-4:]
    return "****"


def mask_text(text: str) -> str:
    def repl(m: re.Match) -> str:
        if m.group(1):
            return m.group(1) + "****" + m.group(3)
        return m.group(4) + "****" + m.group(6)

    return _IN_TEXT.sub(repl, text)


def last_four(phone: str | None) -> str:
    return normalise_phone(phone or "")[-4:]


class PhoneMaskingFilter(logging.Filter):
    """Applied to every handler, so no code path can put a full number in a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                record.msg = record.getMessage()
            except Exception:  # a broken format string is still better logged than lost
                record.msg = str(record.msg)
            record.args = None
        record.msg = mask_text(str(record.msg))
        return True
