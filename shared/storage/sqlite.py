"""SQLite adapter: the embedded default. JSON documents with real, indexed columns for queried fields.

WAL mode lets several processes on one host read while one writes; every write is a single
statement, so compare-and-set and claims are atomic without explicit transactions. Creating and
upgrading tables runs under SQLite's write lock (sqlite_schema). Several writes that must stand or
fall together go in ``transaction()``, or — a consumer's batch — in ``buffered()``, whose writes
wait in memory and take the write lock only for their commit.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .. import jsontext
from . import sqlite_schema
from .sqlite_checkpoint import CHECKPOINTER
from .port import (RANGE_OPS, BufferConflict, DuplicateKey, Index, Metric, NeedsTransaction, StorageError,
                   UndeclaredField, VersionConflict, Where, Sort, check_aggregate, check_where, empty_row)

try:
    import fcntl
except ImportError:  # not on Windows: threads still queue, processes use SQLite's busy handler
    fcntl = None


_SQL_OPS = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise StorageError(f"bad identifier {name!r}")
    return f'"{name}"'


def _key(name: str) -> str:
    """A top-level field named inside a JSON path or SQL text: plain identifiers only."""
    if name in ("_id", "version") or not name.replace("_", "").isalnum():
        raise StorageError(f"bad field {name!r}")
    return name


def _picked(fields: Sequence[str] | None) -> str:
    """What a query returns: the document, or its ``_id``, ``version`` and a JSON array of ``fields``
    read by SQLite (in C, outside Python's GIL) — decoding whole documents to read a few fields was
    a tenth of intake's time (issue 16). Each value keeps its JSON type, as MongoDB's projection
    does: one json_extract of several paths answers a JSON array, and ``->`` one field's JSON
    (json_extract of one path answers a bare SQL value — true as 1 — which json_object kept)."""
    if fields is None:
        return "doc"
    if not fields:
        return "_id, version, '[]'"
    paths = [f"'$.{_key(f)}'" for f in fields]
    if len(paths) == 1:
        return f"_id, version, json_array(doc -> {paths[0]})"
    return f"_id, version, json_extract(doc, {', '.join(paths)})"


def _unpicked(row: Sequence[Any], fields: Sequence[str] | None) -> dict:
    """A row of a query made with ``_picked(fields)``, as the document (or its picked part)."""
    if fields is None:
        return jsontext.loads(row[0])
    return {"_id": row[0], "version": row[1], **dict(zip(fields, jsontext.loads(row[2])))}


_AS_IS = frozenset({str, int, float, type(None)})  # what SQLite takes unchanged (bool is not int here)


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


class _WriterLock:
    """This process's threads queue on a lock; processes sharing the file queue on ``flock``, which
    wakes the next writer as soon as the last one is done (SQLite's busy handler polls with sleeps
    of up to 100 ms). Advisory only: SQLite's own locking still decides, so a process without it
    (another tool, an older version) is merely slower, never unsafe. The kernel drops a dead
    process's lock. Re-entrant: a thread holding it for a transaction (SQLiteStore.transaction)
    may write through code that takes it again (claims)."""

    def __init__(self, path: str | None, after: Callable[[], None] | None = None):
        self._thread = threading.RLock()
        self._after = after  # called once the outermost hold ends: its writes are committed
        self._depth = 0  # changed only by the thread holding _thread
        self._path = path if fcntl is not None else None
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> "_WriterLock":
        self._thread.acquire()
        self._depth += 1
        if self._depth == 1 and self._path is not None:
            try:
                if self._fd is None or self._pid != os.getpid():
                    # A forked child opens its own: a lock on an inherited descriptor is shared.
                    self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError:
                pass  # no file lock to be had: SQLite's busy handler still serialises writers
        return self

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if self._pid == os.getpid():  # an inherited one is the parent's to close
                    os.close(fd)
            except Exception:  # noqa: BLE001 - also at interpreter exit, from __del__
                pass

    __del__ = close

    def __exit__(self, *exc) -> None:
        outermost = self._depth == 1
        try:
            if outermost and self._fd is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                except OSError:
                    pass
        finally:
            self._depth -= 1
            self._thread.release()
        if outermost and self._after is not None:
            self._after()


class _Pending:
    """One statement waiting for a group commit, and its outcome."""
    __slots__ = ("sql", "params", "done", "rowcount", "error")

    def __init__(self, sql: str, params):
        self.sql, self.params = sql, params
        self.done, self.rowcount, self.error = False, -1, None

    def result(self) -> "_Pending":
        if self.error is not None:
            raise self.error
        return self


def _run_batch(conn: sqlite3.Connection, batch: list[_Pending]) -> None:
    try:
        if len(batch) == 1:
            item = batch[0]
            try:
                item.rowcount = conn.execute(item.sql, item.params).rowcount
            except sqlite3.Error as exc:
                item.error = exc
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item in batch:
                conn.execute("SAVEPOINT w")
                try:
                    item.rowcount = conn.execute(item.sql, item.params).rowcount
                except sqlite3.Error as exc:
                    item.error = exc
                    conn.execute("ROLLBACK TO w")
                conn.execute("RELEASE w")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for item in batch:  # nothing of the batch is stored
                item.error = exc if item.error is None else item.error
            if not isinstance(exc, sqlite3.Error):
                raise
    finally:
        for item in batch:
            item.done = True


_ONE_ROW = "one"  # a buffered statement that must change exactly one row (a compare-and-set)


class _Buffer:
    """A buffered unit's writes (SQLiteStore.buffered): the statements in order, each with what its
    commit must find; the documents they leave, for reading back; the tables they touch."""
    __slots__ = ("statements", "docs", "tables", "depth", "noted", "after")

    def __init__(self):
        self.statements: list[tuple[str, Any, Any]] = []
        self.docs: dict[tuple[str, str], str | None] = {}  # (table, _id) -> JSON text as it will be stored
        self.tables: set[str] = set()
        self.depth = 1
        self.noted: dict[str, int] = {}
        self.after: list = []  # called once the unit is committed (wake the outbox relay)

    def add(self, table: str, doc_id: str, text: str, sql: str, params, check=None) -> None:
        self.statements.append((sql, params, check))
        self.docs[(table, doc_id)] = text
        self.tables.add(table)

    def mark(self) -> tuple:
        return len(self.statements), dict(self.docs), set(self.tables), len(self.after)

    def undo(self, mark: tuple) -> None:
        n, self.docs, self.tables, after = mark
        del self.statements[n:]
        del self.after[after:]


def _run_checked(conn: sqlite3.Connection, sql: str, params, check) -> None:
    """One buffered statement at its unit's commit, and what it must find (else BufferConflict)."""
    try:
        changed = conn.execute(sql, params).rowcount
    except sqlite3.IntegrityError as exc:
        raise BufferConflict(str(exc)) from exc
    if check == _ONE_ROW and changed != 1:
        raise BufferConflict("a compare-and-set found another version")


class SQLiteStore:
    def __init__(self, path: str | Path, synchronous: str = "NORMAL"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous if synchronous in ("NORMAL", "FULL", "OFF") else "NORMAL"
        self._local = threading.local()
        self._collections: dict[str, SQLiteCollection] = {}
        self._lock = threading.Lock()
        # SQLite admits one writer at a time; a waiting connection sleeps in its busy handler
        # (1, 2, 5, 10 ms …). Threads of one process queue on this lock instead, which keeps
        # write latency at the statement's own cost; other processes on the same file queue on
        # an advisory file lock beside it (issue 16: two gunicorn workers slept in the busy handler).
        on_disk = self.path != ":memory:"
        self.write_lock = _WriterLock(self.path + "-writer" if on_disk else None,
                                      after=partial(CHECKPOINTER.nudge, self.path) if on_disk else None)
        self._group_commit = self._synchronous == "FULL"
        self._batch_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []

    def write(self, sql: str, params=()):
        """One statement, committed when this returns (its ``rowcount`` says what it changed).

        Group commit (issue 16): statements of this process's threads that queue while another
        writes are run by the next thread to get the lock, all in one transaction, each in its own
        savepoint — a failing statement (a duplicate key) fails alone. Every caller returns only
        after the transaction holding its statement committed; if the commit fails, all of them
        raise. One statement alone runs as before, in autocommit.

        Only with SANZHANG_SQLITE_SYNC=FULL, where each commit waits for the disk: measured
        (2 processes × 8 threads inserting reports) +40–50 % there, −12 % at NORMAL, whose commits
        cost no fsync — so at NORMAL each statement stays its own transaction."""
        if getattr(self._local, "buffer", None) is not None:
            raise NeedsTransaction("a statement of its own inside a buffered unit")
        if getattr(self._local, "depth", 0):
            # Inside this thread's transaction: it holds the write lock and commits at its end.
            return self.connection().execute(sql, params)
        if not self._group_commit:
            with self.write_lock:
                return self.connection().execute(sql, params)
        item = _Pending(sql, params)
        with self._queue_lock:
            self._queue.append(item)
        with self._batch_lock:
            if not item.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                with self.write_lock:
                    _run_batch(self.connection(), batch)
        return item.result()

    @contextmanager
    def transaction(self):
        """This thread's writes inside the block are one transaction, committed at its end; one
        that raises undoes them all. Nested, it is a savepoint: the inner block's writes are undone
        alone when it raises, and the outer one goes on (a consumer's batch: issue 16).

        The outermost holds the write lock (this process's threads and the other processes on the
        file wait) from BEGIN IMMEDIATE to COMMIT, so keep it short; reads inside see its writes.
        Inside a buffered unit it is a part of that unit, undone alone when it raises."""
        buf = getattr(self._local, "buffer", None)
        if buf is not None:
            with self._buffered_part(buf):
                yield
            return
        conn = self.connection()
        depth = getattr(self._local, "depth", 0)
        if depth:
            with self._savepoint(conn, depth):
                yield
            return
        with self.write_lock:
            conn.execute("BEGIN IMMEDIATE")
            self._local.depth = 1
            self._local.noted = {}
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._local.depth = 0
                self._local.noted = {}

    @contextmanager
    def buffered(self):
        """A unit of work whose writes wait in memory and are made at its end, in one short
        transaction — so this process's other threads, and other processes, write while it works
        (issue 16: a consumer's batch held the write lock for all its handlers, and a second worker
        waited for it instead of working).

        Every buffered write is checked when it is made: a compare-and-set must still find its
        version, an insert its key free (a put, as MongoDB's upsert, counts the version up from the
        stored one and needs nothing). If one does not, nothing of
        the unit is stored and BufferConflict is raised; the caller does the work again inside
        ``transaction()``. What cannot wait (a query over a table the unit has written, a claim, a
        blob) raises NeedsTransaction at once. Reads see the unit's own documents by ``_id``."""
        if getattr(self._local, "buffer", None) is not None or getattr(self._local, "depth", 0):
            raise StorageError("a buffered unit is not nested in another unit or transaction")
        buf = self._local.buffer = _Buffer()
        try:
            yield
        finally:
            self._local.buffer = None
        self._commit_buffer(buf)

    def buffering(self) -> "_Buffer | None":
        return getattr(self._local, "buffer", None)

    def after_commit(self, fn) -> None:
        """``fn`` now, or — inside a buffered unit — once its writes are committed."""
        buf = getattr(self._local, "buffer", None)
        if buf is None:
            fn()
        elif fn not in buf.after:
            buf.after.append(fn)

    @contextmanager
    def _buffered_part(self, buf: _Buffer):
        mark = buf.mark()
        depth = buf.depth
        buf.depth += 1
        try:
            yield
        except BaseException:
            buf.undo(mark)
            buf.noted = {k: d for k, d in buf.noted.items() if d <= depth}
            raise
        else:
            buf.noted = {k: min(d, depth) for k, d in buf.noted.items()}
        finally:
            buf.depth = depth

    def _commit_buffer(self, buf: _Buffer) -> None:
        if buf.statements:
            conn = self.connection()
            with self.write_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params, check in buf.statements:
                        _run_checked(conn, sql, params, check)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        for fn in buf.after:
            fn()

    def first_in_transaction(self, key: str) -> bool:
        """False when this thread's open transaction already noted ``key`` in a part still standing
        (a savepoint undone forgets what it noted); True otherwise, and always outside a transaction.
        For a write repeated identically by many messages of one consumer batch (a figure rollup's
        day mark): once per transaction stores the same thing."""
        buf = getattr(self._local, "buffer", None)
        depth = buf.depth if buf is not None else getattr(self._local, "depth", 0)
        if not depth:
            return True
        noted = buf.noted if buf is not None else self._local.noted
        if key in noted:
            return False
        noted[key] = depth
        return True

    @contextmanager
    def _savepoint(self, conn: sqlite3.Connection, depth: int):
        name = f"unit{depth}"
        conn.execute(f"SAVEPOINT {name}")
        self._local.depth = depth + 1
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            self._local.noted = {k: d for k, d in self._local.noted.items() if d <= depth}
            raise
        else:
            conn.execute(f"RELEASE {name}")
            # What the savepoint noted now stands or falls with the enclosing part.
            self._local.noted = {k: min(d, depth) for k, d in self._local.noted.items()}
        finally:
            self._local.depth = depth

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # One connection per thread: sqlite3 connections are not shared across threads.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            # Where the Runtime started it, the log is copied into the file by a thread of its own
            # (sqlite_checkpoint.py); a writer copies it itself only if that falls far behind.
            conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINTER.autocheckpoint_pages()}")
            self._local.conn = conn
        return conn

    def collection(self, name: str, indexes: Iterable[Index] = (), columns: Iterable[str] = ()) -> "SQLiteCollection":
        with self._lock:
            if name not in self._collections:
                self._collections[name] = SQLiteCollection(self, name, tuple(indexes), tuple(columns))
            return self._collections[name]

    def ping(self) -> bool:
        try:
            self.connection().execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def schema_ready(self) -> bool:
        """Every collection this process declared has its table, columns and indexes in the file."""
        try:
            conn = self.connection()
            return all(sqlite_schema.covered(conn, c.declared) for c in list(self._collections.values()))
        except sqlite3.Error:
            return False

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        with self._lock:  # not while another thread of this process writes
            with self.write_lock._thread:
                self.write_lock.close()


class SQLiteCollection:
    def __init__(self, store: SQLiteStore, name: str, indexes: tuple[Index, ...], columns: tuple[str, ...] = ()):
        self.store = store
        self.name = name
        self.table = _ident("c_" + name)
        indexed = {f for ix in indexes for f in ix.fields}
        # Declared columns are real columns too (aggregated, never filtered on), without an index.
        self.columns: list[str] = sorted((indexed | set(columns)) - {"_id", "version"})
        self.queryable = indexed | {"_id", "version"}
        self.aggregatable = set(self.columns) | {"_id", "version"}
        self._create(indexes)

    def _create(self, indexes: tuple[Index, ...]) -> None:
        statements = []
        for ix in indexes:
            name = f"ix_{self.name}_{'_'.join(ix.fields)}"
            unique = "UNIQUE " if ix.unique else ""
            partial = f" WHERE {_ident(ix.present)} IS NOT NULL" if ix.present else ""
            statements.append((name, f"CREATE {unique}INDEX IF NOT EXISTS {_ident(name)} ON {self.table} "
                                     f"({', '.join(_ident(c) for c in ix.fields)}){partial}"))
        self.declared = sqlite_schema.Declared(self.name, self.table, tuple(self.columns), tuple(statements))
        # A whole row's column list, spelt once: building it each insert was ~5 % of a consumer's handler.
        cols = ["_id", "version", "doc"] + self.columns
        self._into = f"{self.table} ({', '.join(_ident(c) for c in cols)}) VALUES ({', '.join('?' for _ in cols)})"
        stored = f"COALESCE((SELECT version FROM {self.table} WHERE _id = ?), 0) + 1"
        self._put = (f"INSERT OR REPLACE INTO {self.table} ({', '.join(_ident(c) for c in cols)}) VALUES "
                     f"(?, {stored}, json_set(?, '$.version', {stored}){''.join(', ?' for _ in self.columns)})")
        # The store's write lock keeps this process's own threads out of SQLite's busy handler;
        # other processes queue on BEGIN IMMEDIATE inside ensure().
        with self.store.write_lock:
            sqlite_schema.ensure(self.store.connection(), self.declared, _ident)

    # -- writes -------------------------------------------------------------------------------
    def _row(self, doc: dict, columns: Sequence[str] | None = None) -> list[Any]:
        """The values of ``columns`` (all of them by default) as SQLite takes them. Most go as they
        are; only bools, dicts and lists need _param (a case row has some thirty columns:
        converting each was a tenth of a consumer's handler, issue 16)."""
        return [v if type(v) in _AS_IS else _param(v) for v in map(doc.get, self.columns if columns is None else columns)]

    def insert(self, doc: dict) -> dict:
        doc = dict(doc)
        doc.setdefault("version", 1)
        sql = "INSERT INTO " + self._into
        text = jsontext.dumps(doc)
        buf = self.store.buffering()
        if buf is not None:  # a key taken meanwhile is found at the unit's commit
            buf.add(self.table, doc["_id"], text, sql, [doc["_id"], doc["version"], text] + self._row(doc))
            return doc
        try:
            self.store.write(sql, [doc["_id"], doc["version"], text] + self._row(doc))
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey(str(exc)) from exc
        return doc

    def _replacing(self, doc: dict, expected_version: int, previous: dict | None) -> tuple[dict, str, list]:
        doc = dict(doc)
        doc["version"] = expected_version + 1
        # SQLite rewrites every index whose column appears in the SET list, changed or not. The
        # caller's copy of the stored document (at expected_version, which the WHERE enforces)
        # says which indexed columns really changed, so only their indexes are touched.
        cols = self.columns if previous is None else [c for c in self.columns if previous.get(c) != doc.get(c)]
        sets = ", ".join(["version = ?", "doc = ?"] + [f"{_ident(c)} = ?" for c in cols])
        return doc, f"UPDATE {self.table} SET {sets} WHERE _id = ? AND version = ?", (
            [doc["version"], jsontext.dumps(doc)] + self._row(doc, cols)
            + [doc["_id"], expected_version])

    def replace(self, doc: dict, expected_version: int, previous: dict | None = None) -> dict:
        doc, sql, params = self._replacing(doc, expected_version, previous)
        buf = self.store.buffering()
        if buf is not None:  # the version is compared at the unit's commit
            buf.add(self.table, doc["_id"], params[1], sql, params, _ONE_ROW)
            return doc
        try:
            cur = self.store.write(sql, params)
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey(str(exc)) from exc
        if cur.rowcount != 1:
            raise VersionConflict(f"{self.name}/{doc['_id']} is not at version {expected_version}")
        return doc

    def replace_many(self, items) -> list:
        self._direct()
        statements = [self._replacing(doc, version, previous) for doc, version, previous in items]
        results: list = []
        if not statements:
            return results
        # The store's transaction: its own, or a savepoint inside a caller's (a consumer's batch).
        with self.store.transaction():
            conn = self.store.connection()
            for (doc, sql, params), (_, version, _) in zip(statements, items):
                try:  # a failing statement is undone alone (SQLite's statement rollback); the rest go on
                    changed = conn.execute(sql, params).rowcount == 1
                except sqlite3.IntegrityError as exc:
                    results.append(DuplicateKey(str(exc)))
                    continue
                results.append(doc if changed else
                               VersionConflict(f"{self.name}/{doc['_id']} is not at version {version}"))
        return results

    def upsert(self, doc: dict) -> dict:
        current = self.get(doc["_id"])
        doc = dict(doc)
        doc["version"] = (current["version"] + 1) if current else 1
        sql = "INSERT OR REPLACE INTO " + self._into
        text = jsontext.dumps(doc)
        buf = self.store.buffering()
        if buf is not None:
            # A put, as on MongoDB (one atomic statement): the version counted up from the one stored
            # at the unit's commit, whatever was read before it.
            buf.add(self.table, doc["_id"], text, self._put, [doc["_id"], doc["_id"], text, doc["_id"]] + self._row(doc))
            return doc
        try:
            self.store.write(sql, [doc["_id"], doc["version"], text] + self._row(doc))
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey(str(exc)) from exc
        return doc

    def delete(self, doc_id: str) -> bool:
        self._direct()
        cur = self.store.write(f"DELETE FROM {self.table} WHERE _id = ?", (doc_id,))
        return cur.rowcount == 1

    def transaction(self):
        return self.store.transaction()

    def after_commit(self, fn) -> None:
        self.store.after_commit(fn)

    def claim_due(self, field: str, now: str, lease_until: str, limit: int = 100,
                  fields: Sequence[str] | None = None) -> list[dict]:
        if field not in self.columns:
            raise UndeclaredField(field)
        self._direct()
        col = _ident(field)
        # With ``fields``, SQLite builds the small answer itself: no whole document is read into
        # Python (a claimed report's outbox is a tenth of it).
        returning = _picked(fields)
        # One UPDATE … RETURNING: the pick and the push-forward are one atomic step, so two
        # processes can never claim the same document.
        sql = (f"UPDATE {self.table} SET {col} = ?, version = version + 1, "
               f"doc = json_set(doc, '$.{field}', ?, '$.version', version + 1) "
               f"WHERE _id IN (SELECT _id FROM {self.table} WHERE {col} IS NOT NULL AND {col} <= ? "
               f"ORDER BY {col} LIMIT ?) RETURNING {returning}")
        with self.store.write_lock:
            rows = self.store.connection().execute(sql, (lease_until, lease_until, now, limit)).fetchall()
        return [_unpicked(r, fields) for r in rows]

    def patch_many(self, at_versions: Sequence[tuple[str, int]], values: Mapping[str, Any]) -> set[str]:
        """One UPDATE per few hundred documents: a row-value IN picks each (id, version) pair, so a
        document written since its pair was read is not touched (compare-and-set, per document).
        Needs SQLite 3.35 (RETURNING), as claim_due does."""
        self._direct()
        keys = [_key(f) for f in values]
        if not at_versions or not keys:
            return set()
        cols = [k for k in keys if k in self.columns]
        # json(?) keeps lists and objects as JSON, not as strings, inside the stored document.
        doc_set = "json_set(doc, " + ", ".join(f"'$.{k}', json(?)" for k in keys) + ", '$.version', version + 1)"
        sets = ", ".join(["version = version + 1", f"doc = {doc_set}"] + [f"{_ident(c)} = ?" for c in cols])
        head = [jsontext.dumps(values[k]) for k in keys] + [_param(values[c]) for c in cols]
        done: set[str] = set()
        pairs = list(at_versions)
        for start in range(0, len(pairs), 400):
            chunk = pairs[start:start + 400]
            # ``_id IN`` lets SQLite search the primary key; the row-value IN alone scans the table.
            sql = (f"UPDATE {self.table} SET {sets} WHERE _id IN ({', '.join('?' for _ in chunk)}) "
                   f"AND (_id, version) IN (VALUES {', '.join('(?, ?)' for _ in chunk)}) RETURNING _id")
            params = head + [doc_id for doc_id, _ in chunk] + [v for pair in chunk for v in pair]
            try:
                with self.store.write_lock:
                    done.update(r[0] for r in self.store.connection().execute(sql, params).fetchall())
            except sqlite3.IntegrityError as exc:
                raise DuplicateKey(str(exc)) from exc
        return done

    def _direct(self) -> None:
        """Writes that cannot wait for a buffered unit's commit (claims, many rows at once)."""
        if self.store.buffering() is not None:
            raise NeedsTransaction(f"{self.name}: not inside a buffered unit")

    def _unbuffered(self) -> None:
        """A query must see every write before it: one over rows a buffered unit has changed waits
        for a transaction (the unit's own documents are read back by ``_id`` alone)."""
        buf = self.store.buffering()
        if buf is not None and self.table in buf.tables:
            raise NeedsTransaction(f"{self.name}: queried after a buffered write")

    # -- reads --------------------------------------------------------------------------------
    def get(self, doc_id: str) -> dict | None:
        buf = self.store.buffering()
        if buf is not None:
            text = buf.docs.get((self.table, doc_id), False)
            if text is not False:
                return jsontext.loads(text)
        row = self.store.connection().execute(f"SELECT doc FROM {self.table} WHERE _id = ?", (doc_id,)).fetchone()
        return jsontext.loads(row[0]) if row else None

    def _where(self, where: Where | None) -> tuple[str, list[Any]]:
        check_where(where, self.queryable)
        clauses: list[str] = []
        params: list[Any] = []
        for key, cond in (where or {}).items():
            col = _ident(key)
            if isinstance(cond, dict):
                for op, value in cond.items():
                    if op in RANGE_OPS:
                        clauses.append(f"{col} {_SQL_OPS[op]} ?")
                        params.append(_param(value))
                    elif op == "$in":
                        values = list(value)
                        if not values:
                            clauses.append("0")
                        else:
                            clauses.append(f"{col} IN ({', '.join('?' for _ in values)})")
                            params.extend(_param(v) for v in values)
                    elif op == "$ne":
                        if value is None:
                            clauses.append(f"{col} IS NOT NULL")
                        else:
                            clauses.append(f"({col} IS NULL OR {col} != ?)")
                            params.append(_param(value))
            elif cond is None:
                clauses.append(f"{col} IS NULL")
            else:
                clauses.append(f"{col} = ?")
                params.append(_param(cond))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def find(self, where: Where | None = None, sort: Sort | None = None,
             limit: int | None = None, skip: int = 0, fields: Sequence[str] | None = None) -> list[dict]:
        self._unbuffered()
        clause, params = self._where(where)
        sql = f"SELECT {_picked(fields)} FROM {self.table}{clause}"
        if sort:
            for field, _ in sort:
                if field not in self.queryable:
                    raise UndeclaredField(field)
            sql += " ORDER BY " + ", ".join(f"{_ident(f)} {'DESC' if d < 0 else 'ASC'}" for f, d in sort)
        if limit is not None or skip:
            sql += " LIMIT ? OFFSET ?"
            params += [limit if limit is not None else -1, skip]
        return [_unpicked(r, fields) for r in self.store.connection().execute(sql, params)]

    def count(self, where: Where | None = None) -> int:
        self._unbuffered()
        clause, params = self._where(where)
        return self.store.connection().execute(f"SELECT COUNT(*) FROM {self.table}{clause}", params).fetchone()[0]

    def group_count(self, by: str, where: Where | None = None) -> dict[Any, int]:
        if by not in self.queryable:
            raise UndeclaredField(by)
        self._unbuffered()
        clause, params = self._where(where)
        col = _ident(by)
        rows = self.store.connection().execute(
            f"SELECT {col}, COUNT(*) FROM {self.table}{clause} GROUP BY {col}", params).fetchall()
        return {k: n for k, n in rows}

    def aggregate(self, by: Sequence[str], metrics: Mapping[str, Metric], where: Where | None = None) -> list[dict]:
        """GROUP BY for counts and sums; a window (ROW_NUMBER over the sorted group) per percentile field."""
        by = tuple(by)
        check_aggregate(by, metrics, self.aggregatable)
        self._unbuffered()
        clause, where_params = self._where(where)
        keys = [_ident(f) for f in by]
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        conn = self.store.connection()
        plain = {n: m for n, m in metrics.items() if m.op != "percentile"}
        rows: dict[tuple, dict] = {}
        if plain or not metrics:
            exprs, params = [], []
            for name, m in plain.items():
                col = _ident(m.field) if m.field else None
                if m.op == "count" and m.lt is not None:
                    exprs.append(f"COALESCE(SUM(CASE WHEN {col} IS NOT NULL AND {col} < ? THEN 1 ELSE 0 END), 0)")
                    params.append(_param(m.lt))
                elif m.op == "count":
                    exprs.append(f"COUNT({col or '*'})")
                elif m.op == "sum":
                    exprs.append(f"COALESCE(SUM({col}), 0)")
                else:
                    exprs.append(f"{m.op.upper()}({col})")
            select = ", ".join(keys + exprs) or "COUNT(*)"
            sql = f"SELECT {select} FROM {self.table}{clause}{group}"
            for values in conn.execute(sql, params + where_params):
                key = tuple(values[:len(by)])
                rows[key] = {**dict(zip(by, key)), **dict(zip(plain, values[len(by):]))}
        partition = f"PARTITION BY {', '.join(keys)} " if keys else ""
        by_field: dict[str, list[tuple[str, int]]] = {}
        for name, m in metrics.items():
            if m.op == "percentile":
                by_field.setdefault(m.field, []).append((name, m.permille))
        for field, wanted in by_field.items():
            # One window pass per field, however many of its percentiles are asked for.
            col = _ident(field)
            inner_where = (clause + " AND " if clause else " WHERE ") + f"{col} IS NOT NULL"
            ranks = " OR ".join("rn = (? * n + 999) / 1000" for _ in wanted)
            sql = (f"SELECT {', '.join(keys + ['v'])}, n, rn FROM (SELECT {', '.join(keys)}{', ' if keys else ''}{col} AS v, "
                   f"ROW_NUMBER() OVER ({partition}ORDER BY {col}) AS rn, COUNT(*) OVER ({partition.strip()}) AS n "
                   f"FROM {self.table}{inner_where}) WHERE {ranks}")
            for values in conn.execute(sql, where_params + [k for _, k in wanted]):
                key = tuple(values[:len(by)])
                value, n, rn = values[len(by):]
                row = rows.setdefault(key, empty_row(by, metrics) | dict(zip(by, key)))
                for name, permille in wanted:
                    if rn == (permille * n + 999) // 1000:
                        row[name] = value
        out = [empty_row(by, metrics) | row for row in rows.values()]
        if not by and not out:
            out = [empty_row(by, metrics)]
        return out
