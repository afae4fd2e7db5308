"""Crash injection at the step boundaries where a lost or doubled message would be born, for the
fault suite. Off unless SANZHANG_FAULT_POINTS names points; then each hit of a named point ends
the process (os._exit, no cleanup — as a power cut or an OOM kill would) with probability
SANZHANG_FAULT_RATE. gunicorn's arbiter starts a fresh worker, and the work must go on from what
was stored."""
from __future__ import annotations

import logging
import os
import random

log = logging.getLogger(__name__)

POINTS = {
    "stored": "a state change and its events are stored; nothing is published yet",
    "published": "the broker confirmed the events; the outbox still holds them",
    "handled": "a consumer stored its work; the message is not acked yet",
}
_points = frozenset(p for p in os.environ.get("SANZHANG_FAULT_POINTS", "").split(",") if p in POINTS)


def _rates(text: str) -> dict[str, float]:
    """``0.01`` for every point, or ``published=0.006,handled=0.0003`` (unnamed points: 0.01): the
    points are hit at very different rates, and a run should crash at each a few times."""
    if "=" not in text:
        return {p: float(text or 0.01) for p in POINTS}
    named = {k.strip(): float(v) for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
    return {p: named.get(p, 0.01) for p in POINTS}


_rate = _rates(os.environ.get("SANZHANG_FAULT_RATE") or "")


def _once(text: str) -> dict[str, int]:
    """``published=40,stored=200``: the hit of each point, counted in one process, that ends it."""
    return {k.strip(): int(v) for k, v in (part.split("=", 1) for part in text.split(",") if "=" in part)
            if k.strip() in POINTS}


# Random crashes alone may miss a point in a run (how often each is hit depends on timing: bigger
# relay batches on a faster machine, fewer publishes), and a run that never crashed there proves
# nothing. SANZHANG_FAULT_ONCE makes the Nth hit of a point end the process once per run: a marker
# file in SANZHANG_FAULT_ONCE_DIR says it was done, so the restarted worker goes on.
_once_at = _once(os.environ.get("SANZHANG_FAULT_ONCE") or "")
_once_dir = os.environ.get("SANZHANG_FAULT_ONCE_DIR") or ""
_hits: dict[str, int] = {}


def hit(point: str) -> None:
    if point not in _points:
        return
    if random.random() < _rate[point] or _first_at(point):
        log.warning("fault injected at %s: the process ends now", point)
        logging.shutdown()
        os._exit(70)


def _first_at(point: str) -> bool:
    if point not in _once_at or not _once_dir:
        return False
    _hits[point] = _hits.get(point, 0) + 1
    if _hits[point] != _once_at[point]:
        return False
    try:
        os.close(os.open(os.path.join(_once_dir, f"fault-once-{point}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False   # done earlier in this run, by this or another process
    return True
