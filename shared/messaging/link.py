"""The way to RabbitMQ, kept open in the background: a service starts and serves without it.

At start the topology is declared once, at once; when the broker cannot be reached, the process
does not fail (gunicorn's master would give up on a worker that cannot boot, and the whole service
would stay down): a thread declares it again with back-off (BACKOFF_START doubling up to
BACKOFF_MAX) until it succeeds, then calls ``on_ready`` — the runtime attaches its consumers there.
Until then the relay publishes nothing (its ``ready`` is this link's), so accepted work waits in
the outboxes and goes out as soon as the broker is there. After that, a lost broker is the
consumers' (kombu reconnects with back-off) and the relay's (it retries with back-off) to ride out.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)

BACKOFF_START = 0.5
BACKOFF_MAX = 15.0


def backoff(failures: int, start: float = BACKOFF_START, cap: float = BACKOFF_MAX) -> float:
    """Seconds to wait after ``failures`` failures in a row (1 → start, doubling, at most cap)."""
    return min(cap, start * 2 ** max(0, failures - 1))


class BrokerLink:
    def __init__(self, declare: Callable[[], None], on_ready: Callable[[], None],
                 start: float = BACKOFF_START, cap: float = BACKOFF_MAX):
        self.declare = declare
        self.on_ready = on_ready
        self.start_delay = start
        self.cap = cap
        self.declared = threading.Event()
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ready(self) -> bool:
        return self.declared.is_set()

    def try_once(self) -> bool:
        """One declaration; True (and on_ready called) when it succeeded."""
        try:
            self.declare()
        except Exception as exc:  # noqa: BLE001 - any failure to reach or use the broker: try again later
            self.failures += 1
            log.warning("broker not reachable (%s: %s); the service runs without it and retries in %.1fs",
                        exc.__class__.__name__, exc, backoff(self.failures, self.start_delay, self.cap))
            return False
        if self.failures:
            log.warning("broker reachable again after %d failed attempts; topology declared", self.failures)
        self.failures = 0
        self.declared.set()
        self.on_ready()
        return True

    def start(self) -> None:
        """Retries in the background until declared (or stopped)."""
        self._thread = threading.Thread(target=self._loop, name="broker-link", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(backoff(max(1, self.failures), self.start_delay, self.cap)):
            if self.try_once():
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
