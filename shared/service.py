"""What a service's composition root hands to the runtime."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .aggregates import Aggregates


class BackgroundTask(Protocol):
    name: str
    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class ServiceParts:
    name: str
    blueprints: list = field(default_factory=list)
    handlers: dict[str, Callable[[dict], None]] = field(default_factory=dict)
    repos: list[Aggregates] = field(default_factory=list)
    tasks: list[BackgroundTask] = field(default_factory=list)
    # Things other parts of the same process may use (tests, CLI, demo loading).
    api: dict[str, Any] = field(default_factory=dict)
    # Per-process costs paid once the runtime starts (after gunicorn's fork), in the background,
    # instead of by the first request (issue 16: jieba's dictionary, ~1 s).
    warm_ups: list[Callable[[], None]] = field(default_factory=list)
    # True when the handlers' only effects are writes to the service's own store (what they cause
    # outside goes through the outbox or a sweeper): the consumer then runs a batch of them in one
    # store transaction (messaging/consume_batch.py). A handler that calls out (a text message
    # provider) must not: an effect made before a commit that then never happens is repeated
    # when the message comes again. False: each write commits as it is made; acks still batch.
    batch_in_transaction: bool = False
    # Event types an earlier version bound this service's queue to and this one no longer declares
    # (HANDLES), but still handles when one arrives: declaring a queue never removes a binding, so an
    # upgraded queue keeps receiving them, and what a process of the earlier version published during
    # a rolling upgrade must not be acked unread (issue 16: dispatch's own case.assigned).
    retired: frozenset = frozenset()


@dataclass
class Context:
    """What every composition root receives: settings, clock, its own store, the relay's waker."""
    settings: Any
    clock: Any
    store: Any
    waker: Any
    issuer: Any = None
