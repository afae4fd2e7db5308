"""Short links to a case in messages: ``<base>/l/<code>``.

The code is derived from the case id with the secret (8 characters of the tracking-number
alphabet, ~8.5e11 values), so notify can write it into a text without asking dispatch, and dispatch
keeps the code → (township, case) table it resolves. A link opens nothing by itself: it leads to
sign-in, and then to the case only for someone who may see it.
"""
from __future__ import annotations

import hashlib
import hmac

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 8


def link_code(secret: str, case_id: str) -> str:
    number = int.from_bytes(hmac.new(secret.encode(), b"sanzhang/case-link/v1|" + case_id.encode(),
                                     hashlib.sha256).digest()[:8], "big")
    out = []
    for _ in range(LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        out.append(ALPHABET[digit])
    return "".join(out)


def is_link_code(text: str) -> bool:
    return len(text) == LENGTH and all(c in ALPHABET for c in text)
