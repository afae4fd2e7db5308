"""One-time sign-in codes, derived rather than stored.

A code is HMAC(secret, challenge id) read as 6 decimal digits. The sign-in service keeps only the
challenge (its id, expiry and tries); notify derives the same code from the challenge id to send
it; the verifier derives it again and compares in constant time. So the code itself is never
stored, never on the broker and never in the delivery log, and a code belongs to one challenge
(one phone) only.
"""
from __future__ import annotations

import hashlib
import hmac

CODE_DIGITS = 6
CODE_TTL_SECONDS = 5 * 60      # a code is valid 5 minutes
MAX_TRIES = 5                  # the 5th wrong try ends the challenge
PER_MINUTE = 1                 # codes a phone may ask for per minute …
PER_HOUR = 5                   # … and per hour
MASK = "*" * CODE_DIGITS       # what the delivery log keeps in place of the code


def code_for(secret: str, challenge_id: str) -> str:
    digest = hmac.new(secret.encode(), b"sanzhang/signin-code/v1|" + challenge_id.encode(), hashlib.sha256).digest()
    return str(int.from_bytes(digest[:8], "big") % 10 ** CODE_DIGITS).zfill(CODE_DIGITS)


def matches(secret: str, challenge_id: str, code: str) -> bool:
    return hmac.compare_digest(code_for(secret, challenge_id).encode(), (code or "").encode())


def phone_key(secret: str, phone: str) -> str:
    """A keyed hash of a phone number: what challenges and sessions are found by, never the number."""
    return hmac.new(secret.encode(), b"sanzhang/phone-key/v1|" + phone.encode(), hashlib.sha256).hexdigest()[:32]
