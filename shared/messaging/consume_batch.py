"""A consumer's batch: the messages handled together, stored by one commit, settled after it.

On SQLite the batch is first a buffered unit (SQLiteStore.buffered): handlers run without the write
lock, their writes wait in memory, and the commit makes them in one short transaction — so a second
worker handles its own batch meanwhile instead of waiting for the lock (issue 16). A handler that
needs what a buffered unit cannot give (a query over rows it changed, a claim) stops the buffering:
it and every later message of the batch are handled after the commit, in order, inside an ordinary
transaction. If the commit finds something changed since it was read, nothing of it is stored and
the whole batch is handled again that way, where a conflict surfaces as it always did.

Inside the transaction each message has its own savepoint (in the buffered unit, its own part), so
a handler that fails undoes only its own writes and its message alone goes back to the queue (or,
past the quorum queue's delivery limit, to the dead-letter queue). Only after the commit are the
messages acked — with one ``basic.ack multiple``. A batch that cannot commit stores nothing and acks
nothing: the broker delivers it all again, and the handlers, idempotent, do nothing twice.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field


@dataclass
class Batch:
    stack: contextlib.ExitStack
    buffered: bool = False
    opened: float = field(default_factory=time.monotonic)
    done: list = field(default_factory=list)      # (message, event, handler seconds), in delivery order
    retry: list = field(default_factory=list)     # (message, attempts)
    later: list = field(default_factory=list)     # (message, event): handled after the buffered commit

    @classmethod
    def open(cls, store) -> "Batch":
        stack = contextlib.ExitStack()
        buffered = getattr(store, "buffered", None)
        if buffered is not None:
            stack.enter_context(buffered())
        elif store is not None:
            stack.enter_context(store.transaction())
        return cls(stack, buffered=buffered is not None)

    @classmethod
    def open_transaction(cls, store) -> "Batch":
        """An ordinary transaction: for what a buffered unit could not hold."""
        stack = contextlib.ExitStack()
        if store is not None:
            stack.enter_context(store.transaction())
        return cls(stack)

    def unit(self, store):
        """One message's writes: a savepoint inside the batch's transaction (or buffered unit)."""
        return store.transaction() if store is not None else contextlib.nullcontext()

    def __len__(self) -> int:
        return len(self.done) + len(self.retry) + len(self.later)

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
        return [m for m, *_ in self.done] + [m for m, _ in self.retry] + [m for m, _ in self.later]
