"""Phone numbers: one contract for every service (normalise, validate, mask, find in free text).

The canonical form is what the stores hold and what every comparison uses:

- a mainland mobile as 11 digits, ``13800138000``;
- a landline as ``area-local`` with one dash, ``0731-55681234`` (the roster's own format, and how
  people read a landline aloud).

``normalise`` accepts every form seen in rosters, forms and providers: spaces, dashes, brackets,
full-width digits, the +86 / 0086 / 86 country prefixes (a landline written internationally drops
its trunk 0: +86 731 5568 1234), and numbers Excel stored as floats (13800000001.0,
1.3800000001E10). Anything else is ``None``: an invalid number is refused, never half-kept.

Providers' formats (E.164 for Tencent, national for Aliyun) derive from the canonical form here,
so no channel parses a number again. Phone numbers are personal data: ``mask`` and ``mask_text``
are how a person or a log sees them.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

MOBILE = re.compile(r"1[3-9][0-9]{9}")
# Area codes 010 and 02x have three digits, every other one four; local numbers never start with 0 or 1.
LANDLINE = re.compile(r"(0[12][0-9]|0[3-9][0-9]{2})([2-9][0-9]{6,7})")
# For documents (OpenAPI patterns): a mobile (optionally +86) or a landline with its area code.
# Every string it allows is valid (a fuzzer's positive cases must be accepted); normalise also takes
# the spaces, brackets, full-width digits and 0086/86 prefixes people type, which it does not list.
PHONE_PATTERN = r"^(\+86)?1[3-9][0-9]{9}$|^(0[12][0-9]|0[3-9][0-9]{2})-?[2-9][0-9]{6,7}$"

# A whole mobile number standing alone: what must never reach a log, an error body or a dead letter.
FULL_NUMBER = re.compile(r"(?<![0-9A-Za-z])1[3-9][0-9]{9}(?![0-9A-Za-z])")

_SEPARATORS = re.compile(r"[\s\-()（）—–.]")
_COUNTRY = ("+86", "0086")
# Full-width digits, plus, minus and brackets fold to ASCII; zero-width marks copied from web pages vanish.
_FOLD = {0x3000: " ", **{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)},
         **{c: None for c in (0x200B, 0x200C, 0x200D, 0xFEFF)}}
# A float as Excel writes it: 13800000001.0, 1.3800000001E10 (text or number).
_EXCEL_FLOAT = re.compile(r"[0-9]+\.0+|[0-9](\.[0-9]+)?[eE]\+?[0-9]+")
# A mobile or a landline inside free text, with an optional country prefix and single separators
# between the groups people write (138 0013 8000, 0731-5568 1234). ASCII letters count as part of a
# word, so hex ids (which may hold 11-digit runs) are left alone, except after an URL-encoded '='
# (%3D), where providers echo the numbers they were sent.
_START = r"(?:(?<![0-9A-Za-z+])|(?<=%3D)|(?<=%3d))"
_IN_TEXT = re.compile(
    _START + r"(?:(?:\+86|0086|86)[\s-]?)?(1[3-9][0-9])[\s-]?([0-9]{4})[\s-]?([0-9]{4})(?![0-9A-Za-z])"
    r"|" + _START + r"(0[0-9]{2,3}-?)([0-9]{3,4})([0-9]{4})(?![0-9A-Za-z])")


def normalise(raw: object) -> str | None:
    """The canonical form of ``raw`` (text, int or Excel float), or None if blank or not a phone number."""
    if type(raw) is str and MOBILE.fullmatch(raw):
        # Already canonical, as every stored number is: a report's phone is normalised three times
        # on the accept path, a lead's each time a case is assigned (issue 16).
        return raw
    digits = _digits(raw)
    if not digits:
        return None
    national, international = _strip_country(digits)
    if MOBILE.fullmatch(national):
        return national
    landline = LANDLINE.fullmatch(national)
    if landline is None and international and not national.startswith("0"):
        landline = LANDLINE.fullmatch("0" + national)  # +86 731 ... drops the trunk 0
    return f"{landline[1]}-{landline[2]}" if landline else None


def is_valid(raw: object) -> bool:
    return normalise(raw) is not None


def is_mobile(raw: object) -> bool:
    """True for a mobile (one SMS can reach), False for a landline or anything invalid."""
    phone = normalise(raw)
    return phone is not None and "-" not in phone


def mobile(raw: object) -> str | None:
    """The 11-digit mobile, or None for a landline or an invalid number: what an SMS channel can send to."""
    phone = normalise(raw)
    return phone if phone is not None and "-" not in phone else None


def e164(raw: object) -> str | None:
    """+8613800138000 / +8673155681234 (Tencent's format), or None if invalid."""
    phone = normalise(raw)
    return None if phone is None else "+86" + phone.replace("-", "").removeprefix("0")


def mask(phone: str | None) -> str | None:
    """138****8000 / 073****1234: what a person reads in a list or a log. Falsy input comes back as is."""
    if not phone:
        return phone
    text = normalise(phone) or re.sub(r"[^0-9]", "", str(phone))
    text = text.replace("-", "")
    if len(text) < 7:
        return "****"
    return text[:3] + "****" + text[-4:]


def last_four(phone: str | None) -> str:
    return (normalise(phone) or re.sub(r"[^0-9]", "", phone or ""))[-4:]


def find_in_text(text: str) -> list[tuple[int, int]]:
    """(start, end) of every phone number written inside ``text``."""
    return [m.span() for m in _IN_TEXT.finditer(text or "")]


def mask_text(text: str) -> str:
    """``text`` with every phone number in it masked (first three digits, ****, last four)."""
    def repl(m: re.Match) -> str:
        if m.group(1):
            return m.group(1) + "****" + m.group(3)
        return m.group(4) + "****" + m.group(6)

    return _IN_TEXT.sub(repl, text)


def _digits(raw: object) -> str:
    if raw is None or isinstance(raw, bool):
        return ""
    if isinstance(raw, float):
        return _from_float_text(repr(raw))
    text = str(raw)
    if any(ord(c) > 0x7F for c in text):
        text = text.translate(_FOLD)
    text = text.strip()
    if _EXCEL_FLOAT.fullmatch(text):
        return _from_float_text(text)
    text = _SEPARATORS.sub("", text)
    return text if re.fullmatch(r"\+?[0-9]+", text) else ""


def _from_float_text(text: str) -> str:
    """13800000001.0 / 1.3800000001E10 as the integer Excel meant; '' if it has a fraction."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return ""
    if not value.is_finite() or value != value.to_integral_value() or value < 0:
        return ""
    return str(int(value))


def _strip_country(digits: str) -> tuple[str, bool]:
    """The national number, and whether it was written with a country prefix."""
    for prefix in _COUNTRY:
        if digits.startswith(prefix):
            return digits[len(prefix):], True
    # A bare 86 is only a prefix in front of a whole mobile: 8613800138000 (13 digits).
    if digits.startswith("86") and MOBILE.fullmatch(digits[2:]):
        return digits[2:], True
    return digits, False
