"""The embedded default's bus: a durable inbox per consuming service, in SQLite in the data folder.

The relay appends each event once per service bound to its type (one row per (service, event),
in one transaction) and only then clears it from the outbox; a consumer deletes its row only
after its handler stored its work. So an event leaves durable storage only once every service
that must handle it has done so — there is no in-memory window for a SIGKILL to empty.

A consumer claims one row at a time by writing its owner token on it, which also counts the
delivery: a message that kills the process every time it is handled is dead-lettered after
``max_deliveries`` like one whose handler raises, and no other message pays for it. Owners hold
an exclusive ``flock`` on a file named after their token for as long as they live; the kernel
drops it when the process dies, however it dies. Any process sharing the data folder sees a dead
owner's rows as free at once (at start-up, and every couple of seconds while running): recovery
does not wait for a lease to run out.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .publish import Unroutable

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS inbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        consumer TEXT NOT NULL,
        message_id TEXT NOT NULL,
        routing_key TEXT NOT NULL,
        body TEXT NOT NULL,
        owner TEXT,
        deliveries INTEGER NOT NULL DEFAULT 0,
        UNIQUE (consumer, message_id))""",
    # The claim reads the oldest free row of one consumer; the reaper the rows of one owner.
    "CREATE INDEX IF NOT EXISTS inbox_free ON inbox (consumer, seq) WHERE owner IS NULL",
    "CREATE INDEX IF NOT EXISTS inbox_owned ON inbox (owner) WHERE owner IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS dead (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        consumer TEXT NOT NULL,
        message_id TEXT NOT NULL,
        routing_key TEXT NOT NULL,
        body TEXT NOT NULL,
        reason TEXT NOT NULL,
        deliveries INTEGER NOT NULL,
        died_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS dead_consumer ON dead (consumer, seq)",
)

REAP_EVERY = 2.0  # seconds between checks for rows held by processes that have died

_opened: set[str] = set()  # bus files this process opened (the test suite's privacy scan reads them)


def opened_paths() -> list[str]:
    return sorted(_opened)


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic semantics: ``*`` is exactly one word, ``#`` zero or more."""
    p, k = pattern.split("."), key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(k)
        if p[i] == "#":
            return any(match(i + 1, jj) for jj in range(j, len(k) + 1))
        return j < len(k) and p[i] in ("*", k[j]) and match(i + 1, j + 1)

    return match(0, 0)


@dataclass(frozen=True)
class Delivery:
    seq: int
    consumer: str
    message_id: str
    routing_key: str
    body: str
    deliveries: int


class OwnerLock:
    """This process's claim token, alive exactly as long as the process holds its file's flock."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.token = uuid.uuid4().hex
        self.path = folder / f"{self.token}.lock"
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @staticmethod
    def alive(folder: Path, token: str) -> bool:
        try:
            fd = os.open(folder / f"{token}.lock", os.O_RDWR)
        except FileNotFoundError:
            return False  # closed cleanly (it released its rows first) or already reaped
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we may just have taken
        return False

    @staticmethod
    def forget(folder: Path, token: str) -> None:
        try:
            (folder / f"{token}.lock").unlink()
        except FileNotFoundError:
            pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.forget(self.folder, self.token)


def inspect(path: Path, limit: int = 50) -> dict:
    """What waits and what is dead, per service, read-only (``sanzhang bus``): bodies are left out."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        pending = dict(conn.execute("SELECT consumer, COUNT(*) FROM inbox GROUP BY consumer").fetchall())
        dead = dict(conn.execute("SELECT consumer, COUNT(*) FROM dead GROUP BY consumer").fetchall())
        keys = ("service", "routing_key", "message_id", "reason", "deliveries", "died_at")
        letters = [dict(zip(keys, r)) for r in conn.execute(
            "SELECT consumer, routing_key, message_id, reason, deliveries, died_at FROM dead "
            "ORDER BY seq DESC LIMIT ?", (limit,))]
    finally:
        conn.close()
    return {"pending": pending, "dead": dead, "dead_letters": letters}


class EmbeddedBus:
    def __init__(self, path: Path, subscriptions: Mapping[str, Iterable[str]], clock, synchronous: str = "NORMAL"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.subscriptions = {c: tuple(keys) for c, keys in subscriptions.items()}
        self.clock = clock
        self._synchronous = synchronous if synchronous in ("NORMAL", "FULL", "OFF") else "NORMAL"
        self._local = threading.local()
        self._write_lock = threading.Lock()  # threads of this process queue here, not in SQLite's busy handler
        self._routes: dict[str, tuple[str, ...]] = {}
        self._wakers = {c: threading.Event() for c in self.subscriptions}
        self._owners_dir = self.path.with_suffix(".owners")
        self._reaped_at = 0.0
        self._reap_lock = threading.Lock()
        self._create()
        self.owner = OwnerLock(self._owners_dir)
        _opened.add(str(self.path))
        self.reap()

    # -- connections ------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            self._local.conn = conn
        return conn

    def _transaction(self, statements) -> list:
        """Runs (sql, params[, many]) steps in one write transaction; returns each step's cursor."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = [conn.executemany(s[0], s[1]) if len(s) > 2 and s[2] else conn.execute(s[0], s[1])
                       for s in statements]
                conn.execute("COMMIT")
                return out
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _create(self) -> None:
        # IF NOT EXISTS in one write transaction: any number of processes may start at once.
        self._transaction([(sql, ()) for sql in SCHEMA])

    # -- publishing -------------------------------------------------------------------------------
    def route(self, routing_key: str) -> tuple[str, ...]:
        if routing_key not in self._routes:
            self._routes[routing_key] = tuple(c for c, keys in self.subscriptions.items()
                                              if any(topic_matches(k, routing_key) for k in keys))
        return self._routes[routing_key]

    def append(self, messages: list[tuple[str, str, str]]) -> int:
        """Stores (routing_key, message_id, body) once per bound consumer, all or nothing.

        A message already waiting for a consumer is not added twice (the relay re-publishes after a
        crash between this commit and clearing the outbox); one already handled is, and the
        consumer's idempotency makes it a no-op — as with a re-published message on RabbitMQ."""
        rows = []
        for routing_key, message_id, body in messages:
            consumers = self.route(routing_key)
            if not consumers:
                raise Unroutable(f"no binding for {routing_key}")
            rows.extend((c, message_id, routing_key, body) for c in consumers)
        if not rows:
            return 0
        self._transaction([("INSERT OR IGNORE INTO inbox (consumer, message_id, routing_key, body) "
                            "VALUES (?, ?, ?, ?)", rows, True)])
        for consumer in {r[0] for r in rows}:
            self._wakers[consumer].set()
        return len(rows)

    # -- consuming --------------------------------------------------------------------------------
    def claim(self, consumer: str) -> Delivery | None:
        """Takes the oldest free row of ``consumer`` for this process and counts the delivery."""
        with self._write_lock:
            row = self._conn().execute(
                "UPDATE inbox SET owner = ?, deliveries = deliveries + 1 WHERE seq = "
                "(SELECT seq FROM inbox WHERE consumer = ? AND owner IS NULL ORDER BY seq LIMIT 1) "
                "RETURNING seq, consumer, message_id, routing_key, body, deliveries",
                (self.owner.token, consumer)).fetchone()
        return Delivery(*row) if row else None

    def done(self, delivery: Delivery) -> None:
        with self._write_lock:
            self._conn().execute("DELETE FROM inbox WHERE seq = ?", (delivery.seq,))

    def release(self, delivery: Delivery) -> None:
        """Back to the queue (its delivery stays counted) for another attempt."""
        with self._write_lock:
            self._conn().execute("UPDATE inbox SET owner = NULL WHERE seq = ? AND owner = ?",
                                 (delivery.seq, self.owner.token))
        self._wakers[delivery.consumer].set()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Moves the row to the dead table (the embedded ``<service>.dead`` queue) in one transaction."""
        from ..clock import iso

        self._transaction([
            ("INSERT INTO dead (consumer, message_id, routing_key, body, reason, deliveries, died_at) "
             "SELECT consumer, message_id, routing_key, body, ?, deliveries, ? FROM inbox WHERE seq = ?",
             (reason, iso(self.clock.now()), delivery.seq)),
            ("DELETE FROM inbox WHERE seq = ?", (delivery.seq,)),
        ])

    def wait(self, consumer: str, timeout: float) -> None:
        """Sleeps until this process appends for ``consumer`` or ``timeout`` passes (other processes'
        appends are seen at the next poll); reaps dead owners' rows now and then."""
        waker = self._wakers[consumer]
        waker.wait(timeout)
        waker.clear()
        if time.monotonic() - self._reaped_at >= REAP_EVERY:
            self.reap()

    def wake(self, consumer: str) -> None:
        self._wakers[consumer].set()

    def reap(self) -> int:
        """Frees the rows held by owners that no longer live: they are redelivered at once."""
        if not self._reap_lock.acquire(blocking=False):
            return 0
        try:
            self._reaped_at = time.monotonic()
            owners = [r[0] for r in self._conn().execute(
                "SELECT DISTINCT owner FROM inbox WHERE owner IS NOT NULL")]
            freed = 0
            for token in owners:
                if token == self.owner.token or OwnerLock.alive(self._owners_dir, token):
                    continue
                with self._write_lock:
                    freed += self._conn().execute("UPDATE inbox SET owner = NULL WHERE owner = ?",
                                                  (token,)).rowcount
                OwnerLock.forget(self._owners_dir, token)
            self._forget_dead_owners()
            if freed:
                for waker in self._wakers.values():
                    waker.set()
            return freed
        finally:
            self._reap_lock.release()

    def _forget_dead_owners(self) -> None:
        # Lock files of processes that died holding nothing would otherwise pile up.
        for path in self._owners_dir.glob("*.lock"):
            token = path.stem
            if token != self.owner.token and not OwnerLock.alive(self._owners_dir, token):
                OwnerLock.forget(self._owners_dir, token)

    # -- figures ----------------------------------------------------------------------------------
    def pending(self, consumer: str | None = None) -> int:
        sql, params = "SELECT COUNT(*) FROM inbox", ()
        if consumer:
            sql, params = sql + " WHERE consumer = ?", (consumer,)
        return self._conn().execute(sql, params).fetchone()[0]

    def pending_by_consumer(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT consumer, COUNT(*) FROM inbox GROUP BY consumer").fetchall()
        return {c: rows_n for c, rows_n in rows}

    def dead_by_consumer(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT consumer, COUNT(*) FROM dead GROUP BY consumer").fetchall()
        return {c: n for c, n in rows}

    def dead(self, consumer: str, limit: int = 100) -> list[dict]:
        rows = self._conn().execute(
            "SELECT message_id, routing_key, body, reason, deliveries, died_at FROM dead WHERE consumer = ? "
            "ORDER BY seq LIMIT ?", (consumer, limit)).fetchall()
        keys = ("message_id", "routing_key", "body", "reason", "deliveries", "died_at")
        return [dict(zip(keys, r)) for r in rows]

    def close(self) -> None:
        """Gives this process's unfinished rows back at once, then lets its token go."""
        try:
            with self._write_lock:
                self._conn().execute("UPDATE inbox SET owner = NULL WHERE owner = ?", (self.owner.token,))
        finally:
            self.owner.close()
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None
