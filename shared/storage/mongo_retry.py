"""What the MongoDB adapter does when the replica set's primary steps down or the network drops.

pymongo's retryable writes (on by default) already retry every single-document write once, with
the same transaction number, so the server applies it at most once. That retry waits for a new
primary only as long as server selection allows; an election can take longer. So the adapter
retries the whole operation a few more times, with a growing pause — a bound of about
``sum(PAUSES)`` seconds beyond the driver's own wait — and then gives up with ``StoreUnavailable``,
which the web layer answers with a 503 JSON error and consumers treat as "not handled, redeliver".

An adapter-level retry is a new operation to the server, so a write that did land before the
connection dropped is met again on the retry; each write method checks for its own earlier
success (see mongo.py) rather than reporting a conflict. Every write is one document in one
statement, so there is never a partial write to repair.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from pymongo.errors import AutoReconnect

from .port import StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# NotPrimaryError, ServerSelectionTimeoutError and NetworkTimeout are all AutoReconnect.
TRANSIENT = (AutoReconnect,)
PAUSES = (0.05, 0.2, 0.5, 1.0, 2.0)


def retrying(what: str, op: Callable[[int], T], pauses: tuple[float, ...] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """Runs ``op(attempt)`` (attempt 0 first) until it returns, retrying transient errors."""
    pauses = PAUSES if pauses is None else pauses
    for attempt in range(len(pauses) + 1):
        try:
            return op(attempt)
        except TRANSIENT as exc:
            if attempt == len(pauses):
                raise StoreUnavailable(f"{what}: {type(exc).__name__} after {attempt + 1} attempts") from exc
            log.warning("store %s: %s, retry %d", what, type(exc).__name__, attempt + 1)
            sleep(pauses[attempt])
    raise AssertionError("unreachable")
