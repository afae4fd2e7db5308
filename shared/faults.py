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


def hit(point: str) -> None:
    if point in _points and random.random() < _rate[point]:
        log.warning("fault injected at %s: the process ends now", point)
        logging.shutdown()
        os._exit(70)
