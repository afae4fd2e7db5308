"""The one phone contract (shared/domain/phones.py) on every form seen in rosters, forms and providers."""
from __future__ import annotations

import pytest

from shared.domain import phones

MOBILE = "13800138000"


@pytest.mark.parametrize("raw", [
    "13800138000", " 13800138000 ", "138 0013 8000", "138-0013-8000", "(138)00138000", "138.0013.8000",
    "１３８００１３８０００", "１３８　００１３　８０００", "138\u200b00138000",  # full-width, ideographic space, zero-width
    "+8613800138000", "+86 138 0013 8000", "+86-138-0013-8000", "＋８６１３８００１３８０００",
    "008613800138000", "0086 138 0013 8000", "8613800138000", "86 138 0013 8000",
    13800138000, 13800138000.0, "13800138000.0", "1.3800138E10", "1.3800138e+10", 1.3800138e10,
])
def test_every_way_a_mobile_is_written_normalises_to_eleven_digits(raw):
    assert phones.normalise(raw) == MOBILE
    assert phones.is_valid(raw) and phones.is_mobile(raw)
    assert phones.mobile(raw) == MOBILE


@pytest.mark.parametrize("raw, expected", [
    ("0731-55681234", "0731-55681234"),
    ("073155681234", "0731-55681234"),
    ("0731 5568 1234", "0731-55681234"),
    ("(0731) 5551234", "0731-5551234"),
    ("（0731）55681234", "0731-55681234"),
    ("０７３１－５５６８１２３４", "0731-55681234"),
    ("010-62345678", "010-62345678"),
    ("02162345678", "021-62345678"),
    ("+86 731 5568 1234", "0731-55681234"),   # written internationally: the trunk 0 is dropped
    ("0086-10-62345678", "010-62345678"),
    ("+86 0731 55681234", "0731-55681234"),
    (73155681234.0, None),                     # Excel dropped the leading 0: no area code is left
])
def test_landlines_keep_their_area_code_with_one_dash(raw, expected):
    assert phones.normalise(raw) == expected
    if expected:
        assert phones.is_valid(raw) and not phones.is_mobile(raw) and phones.mobile(raw) is None


@pytest.mark.parametrize("raw", [
    None, "", "   ", "12345", "1387310000a", "12812345678", "23800138000", "138001380001", "1380013800",
    "010-12345678", "0731-1234567", "0731-055681234", "+1 415 555 0100", "86138001380", "13800138000.5",
    "1.38001380005E10", True, False, -13800138000.0, float("nan"), float("inf"), "138-0013-8000 转 12",
    "tel:13800138000",
])
def test_anything_else_is_refused_whole(raw):
    assert phones.normalise(raw) is None
    assert not phones.is_valid(raw) and not phones.is_mobile(raw)
    assert phones.mobile(raw) is None and phones.e164(raw) is None


def test_canonical_forms_are_fixed_points():
    for phone in (MOBILE, "0731-55681234", "010-62345678"):
        assert phones.normalise(phone) == phone
        assert phones.normalise(phones.e164(phone)) == phone


@pytest.mark.parametrize("raw, expected", [
    ("138 0013 8000", "+8613800138000"),
    ("0731-55681234", "+8673155681234"),
    ("010-62345678", "+861062345678"),
])
def test_provider_formats_derive_from_the_canonical_form(raw, expected):
    assert phones.e164(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("13800138000", "138****8000"),
    ("+86 138-0013-8000", "138****8000"),
    ("008613800138000", "138****8000"),
    ("0731-55681234", "073****1234"),
    ("12345678901234", "123****1234"),   # not a phone number, still never shown whole
    ("12345", "****"),
    ("", ""),
    (None, None),
])
def test_mask_shows_three_and_four_digits_at_most(raw, expected):
    assert phones.mask(raw) == expected


def test_last_four_is_of_the_canonical_number():
    assert phones.last_four("+86 138 0013 8000") == "8000"
    assert phones.last_four("0731-55681234") == "1234"
    assert phones.last_four(None) == ""


@pytest.mark.parametrize("text, expected", [
    ("请联系13800138000", "请联系138****8000"),
    ("电话：138 0013 8000。", "电话：138****8000。"),
    ("电话:138-0013-8000", "电话:138****8000"),
    ("+8613800138000 or 0086 13800138000", "138****8000 or 138****8000"),
    ("座机 0731-55681234 或 073155681234", "座机 0731-****1234 或 0731****1234"),
    ("PhoneNumbers%3D13800138000%26", "PhoneNumbers%3D138****8000%26"),   # echoed by a provider
    ("report a13800138000b0c9 id", "report a13800138000b0c9 id"),          # hex ids are left alone
    ("order 2613800138000", "order 2613800138000"),                        # a longer number is not a phone
    ("no numbers here", "no numbers here"),
])
def test_mask_text_finds_numbers_in_free_text(text, expected):
    assert phones.mask_text(text) == expected
    assert not phones.FULL_NUMBER.search(phones.mask_text(text)) or "a1380" in text or "2613" in text


def test_find_in_text_gives_the_spans():
    text = "甲13800138000乙 0731-55681234"
    spans = phones.find_in_text(text)
    assert [text[a:b] for a, b in spans] == ["13800138000", "0731-55681234"]
    assert phones.find_in_text("") == [] and phones.find_in_text(None) == []


def test_full_number_is_what_log_scans_look_for():
    assert phones.FULL_NUMBER.search("x 13800138000 y")
    assert not phones.FULL_NUMBER.search("x 138****8000 y")
    assert not phones.FULL_NUMBER.search("abc13800138000")


def test_the_documented_pattern_allows_only_valid_numbers():
    import re

    for text in ("13800138000", "+8613800138000", "0731-55681234", "073155681234", "010-62345678", "0731-5568123"):
        assert re.match(phones.PHONE_PATTERN, text) and phones.is_valid(text), text
    for text in ("12812345678", "010-12345678", "0731-055681234", "1380013800", "+86 13800138000"):
        assert not re.match(phones.PHONE_PATTERN, text), text


@pytest.mark.parametrize("raw", ["13800138000", "19912345678", " 13800138000", "138-0013-8000", "8613800138000",
                                 "+8613800138000", "１３８００１３８０００", "12800138000", "1380013800"])
def test_a_canonical_mobile_comes_back_as_itself_and_others_are_worked_out_as_before(raw):
    """The canonical form is a fixed point (stored numbers skip the parse); anything else still
    goes through it — spaces, dashes, a country prefix, full-width digits, or not a mobile at all."""
    result = phones.normalise(raw)
    if result is not None:
        assert phones.normalise(result) == result
    expected = {"19912345678": "19912345678", "12800138000": None, "1380013800": None}.get(raw, "13800138000")
    assert result == expected
