"""Personal data inside events is sealed (Fernet: AES-128-CBC + HMAC-SHA256, from the maintained
`cryptography` package), so the broker, its dead-letter queues and anything that copies a message
never hold a resident's or a lead's phone number in clear. Producers and consumers see clear text:
``make_event`` seals, ``load_event`` opens.

The key is derived from SANZHANG_SECRET; SANZHANG_PREVIOUS_SECRET keeps messages sealed before a
rotation readable until they have drained.
"""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "sealed:v1:"


def _fernet(secret: str) -> Fernet:
    key = hashlib.sha256(b"sanzhang/personal-data/v1|" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


@lru_cache(maxsize=4096)  # a few dozen field names, asked for every key of every event built
def is_personal(key: str) -> bool:
    """Field names that carry a contact address; masked copies are not personal."""
    return (key.endswith("phone") or key.endswith("openid") or key.endswith("email")) and not key.endswith("_masked")


class Sealer:
    def __init__(self, secret: str, previous: str | None = None):
        keys = [_fernet(secret)] + ([_fernet(previous)] if previous else [])
        self._fernet = MultiFernet(keys)

    def seal(self, value: str) -> str:
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, value: str) -> str:
        try:
            return self._fernet.decrypt(value[len(PREFIX):].encode()).decode()
        except InvalidToken as exc:
            raise ValueError("a sealed field could not be opened (wrong SANZHANG_SECRET?)") from exc


_sealer: Sealer | None = None


def configure(secret: str | None, previous: str | None = None) -> None:
    """Called by the composition root. Without a secret nothing is sealed (a bare embedded run)."""
    global _sealer
    _sealer = Sealer(secret, previous) if secret else None


def seal_tree(value: Any) -> Any:
    if _sealer is None:
        return value
    return _sealed(value, _sealer)


# The walks below look at a value's type before calling down, so the leaves (most of an event:
# ids, times, numbers) cost no call of their own; every event built is sealed and every event
# consumed is opened (issue 16). A string is sealed only under a personal key, and only once.

def _sealed(value: Any, sealer: "Sealer") -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(v, str):
                if v and is_personal(k) and not v.startswith(PREFIX):
                    v = sealer.seal(v)
            elif isinstance(v, (dict, list)):
                v = _sealed(v, sealer)
            out[k] = v
        return out
    if isinstance(value, list):
        return [_sealed(v, sealer) if isinstance(v, (dict, list)) else v for v in value]
    return value


def open_tree(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(v, str):
                if v.startswith(PREFIX):
                    v = _open(v)
            elif isinstance(v, (dict, list)):
                v = open_tree(v)
            out[k] = v
        return out
    if isinstance(value, list):
        return [open_tree(v) if isinstance(v, (dict, list)) else v for v in value]  # sealed only under keys
    return value


def _open(value: str) -> str:
    if _sealer is None:
        raise ValueError("a sealed field arrived but no SANZHANG_SECRET is configured")
    return _sealer.open(value)
