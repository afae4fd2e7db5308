"""Identifiers. Derived ids are how redelivered messages land on the same document twice."""
from __future__ import annotations

import hashlib
import secrets
import uuid

# Tracking numbers are read aloud over the phone: no 0/O, 1/I/L.
_TRACKING_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_id() -> str:
    return uuid.uuid4().hex


def derived_id(*parts: str) -> str:
    """The same inputs always give the same id (uuid5), e.g. the case made for a report."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "sanzhang:" + "|".join(parts)).hex


def short_hash(*parts: str, length: int = 16) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:length]


def tracking_number() -> str:
    """8 characters from a 31-letter alphabet: ~8.5e11 values, unguessable enough to pair with a phone check."""
    return "".join(secrets.choice(_TRACKING_ALPHABET) for _ in range(8))


def case_id_for(report_id: str) -> str:
    """One report, one case, however often report.submitted arrives (dispatch makes it, intake looks it up)."""
    return derived_id("case", report_id)


def township_unit_id(township: str) -> str:
    """The org unit standing for a township's staff (the top of the chain below the departments)."""
    return "t-" + township
