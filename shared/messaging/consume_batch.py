"""A consumer's batch: the messages handled inside one store transaction, settled after its commit.

Each message is handled in its own savepoint, so a handler that fails undoes only its own writes
and its message alone goes back to the queue (or, past the quorum queue's delivery limit, to the
dead-letter queue); the others' work commits together. Only after the commit are they acked — with
one ``basic.ack multiple`` for the batch. A batch that cannot commit stores nothing and acks
nothing: the broker delivers it all again, and the handlers, idempotent, do nothing twice.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field


@dataclass
class Batch:
    stack: contextlib.ExitStack
    opened: float = field(default_factory=time.monotonic)
    done: list = field(default_factory=list)      # (message, event type, handler seconds)
    retry: list = field(default_factory=list)     # (message, attempts)

    @classmethod
    def open(cls, store) -> "Batch":
        stack = contextlib.ExitStack()
        if store is not None:
            stack.enter_context(store.transaction())
        return cls(stack)

    def unit(self, store):
        """One message's writes: a savepoint inside the batch's transaction."""
        return store.transaction() if store is not None else contextlib.nullcontext()

    def __len__(self) -> int:
        return len(self.done) + len(self.retry)

    def due(self, size: int, max_wait: float) -> bool:
        return len(self) >= size or time.monotonic() - self.opened >= max_wait

    def commit(self) -> None:
        self.stack.close()

    def abandon(self) -> None:
        """Rolls the transaction back (the broker connection is gone: the unacked come again)."""
        error = RuntimeError("batch abandoned")
        try:
            self.stack.__exit__(RuntimeError, error, None)
        except Exception:  # noqa: BLE001 - a rollback that fails leaves nothing committed either
            pass

    @property
    def messages(self) -> list:
        return [m for m, *_ in self.done] + [m for m, _ in self.retry]
