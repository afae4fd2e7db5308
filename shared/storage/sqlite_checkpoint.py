"""Copying SQLite's write-ahead log into the database file beside the writers, not inside them.

Why: by default SQLite runs that copy (a *checkpoint*, with its fsyncs at synchronous=NORMAL) inside
the COMMIT that pushed the log past 1,000 pages, so one writer in every few hundred pays for all
of them — while it holds the write lock that this process's other threads and the other processes
on the file queue on (issue 16: with 10,000 SLA timers due at once, two dispatch workers took
turns on the lock and the checkpoints inside it were ~12 % of the burst). Here a writer's commit only
appends to the log; a thread of this process copies what the commits appended shortly after, as a
PASSIVE checkpoint, which waits for no reader and no writer, so the writers go on meanwhile.

Each connection's own automatic checkpoint stays, at a larger size (BACKSTOP_PAGES), should this
thread fall behind or die: the log never grows without bound. The thread runs where the Runtime
started it (a service's worker); elsewhere SQLite checkpoints as it always did. Nothing here
touches durability: a commit is as durable when it returns as before (at NORMAL, safe from a
process crash; at FULL, from power loss), and a checkpoint only moves committed pages.

One thread per process serves every database file it writes; it keeps a connection to each of the
last few files it copied (KEEP_OPEN) and never creates a file (``mode=rw``), so a database removed
meanwhile — a test's temporary folder — is just skipped.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from urllib.parse import quote

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 10_000   # each connection's own checkpoint, if the thread falls behind (~40 MB of log)
KEEP_OPEN = 8             # connections the thread keeps, one a database file
SETTLE = 0.05             # seconds after a commit before copying: a burst's commits copied together


class Checkpointer:
    def __init__(self, settle: float = SETTLE):
        self.settle = settle
        self._lock = threading.Lock()
        self._due: set[str] = set()
        self._wake = threading.Event()
        self._pid = 0
        self._open: dict[str, sqlite3.Connection] = {}   # used by the thread alone
        self.checkpoints = 0   # how many ran: tests and curiosity
        if hasattr(os, "register_at_fork"):
            # The parent's thread may hold the lock at the fork: the child starts afresh.
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0

    def start(self) -> None:
        """Copy this process's logs from now on (Runtime.start, in each worker after gunicorn's fork:
        a thread does not survive a fork). A process that never starts it — a command-line import, a
        test's store — leaves the copy to SQLite, as before."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._due = set()
            self._open = {}   # a parent's connections are not a forked child's to use
            self._wake = threading.Event()
            threading.Thread(target=self._run, args=(self._wake,), name="sqlite-checkpoint", daemon=True).start()

    def running(self) -> bool:
        return self._pid == os.getpid()

    def autocheckpoint_pages(self) -> int:
        """A new connection's own automatic checkpoint: the backstop where the thread runs,
        SQLite's default (1,000 pages) where it does not."""
        return BACKSTOP_PAGES if self.running() else 1000

    def nudge(self, path: str) -> None:
        """A commit to ``path`` appended to its log: copy it soon. Cheap: called after every write."""
        if self._pid != os.getpid():
            return
        with self._lock:
            self._due.add(path)
        self._wake.set()

    def _run(self, wake: threading.Event) -> None:
        while True:
            wake.wait()
            time.sleep(self.settle)
            wake.clear()
            with self._lock:
                paths, self._due = self._due, set()
            for path in paths:
                try:
                    self.checkpoint(path)
                except Exception:  # noqa: BLE001 - the thread must outlive one bad file
                    log.warning("checkpoint of %s failed", path, exc_info=True)

    def checkpoint(self, path: str) -> None:
        conn = self._connection(path)
        if conn is None:
            return  # the file is gone (a test's folder): nothing to copy
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            # Busy or failing: the next commit nudges again, and the writers' backstop remains.
            log.debug("checkpoint of %s skipped: %s", path, exc)
            self._forget(path)

    def _connection(self, path: str) -> sqlite3.Connection | None:
        """The thread's connection to ``path``: kept for the few files a process writes (opening one
        costs more than the checkpoint of a quiet file), the least recently used closed beyond that."""
        conn = self._open.pop(path, None)
        if conn is None:
            try:
                conn = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, isolation_level=None,
                                       check_same_thread=False)
            except sqlite3.Error:
                return None
        self._open[path] = conn   # the newest last
        while len(self._open) > KEEP_OPEN:
            self._forget(next(iter(self._open)))
        return conn

    def _forget(self, path: str) -> None:
        conn = self._open.pop(path, None)
        if conn is not None:
            conn.close()


CHECKPOINTER = Checkpointer()
