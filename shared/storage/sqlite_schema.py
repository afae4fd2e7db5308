"""Creates and upgrades one collection's table, safely with any number of processes starting at once.

Every process (each gunicorn worker, each service started on its own) declares the collections it
uses when it starts. Two of them reading ``PRAGMA table_info`` and then both running
``ALTER TABLE … ADD COLUMN`` used to crash the second with "duplicate column name". Now:

- the whole upgrade of a collection runs in one ``BEGIN IMMEDIATE`` transaction — SQLite's write
  lock, taken *before* anything is read, so the second process waits (busy timeout) and then sees
  the first one's finished schema;
- every step is idempotent anyway (``IF NOT EXISTS``, a column added only when the table, read
  inside the lock, lacks it), so a database made by an older version upgrades the same way;
- the ``_schema`` table keeps, per collection, the columns and indexes in place and a version
  counted up on each change. A process whose declaration is already covered reads that row and
  takes no write lock at all; ``covered`` is what readiness asks.

Upgrades only add (columns, indexes), never drop: an older process still running during a rolling
upgrade keeps finding everything it declared.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

SCHEMA_TABLE = "_schema"


@dataclass(frozen=True)
class Declared:
    """What one process needs of a collection: its table, its real columns and its indexes."""
    name: str
    table: str                            # quoted identifier, e.g. "c_reports"
    columns: tuple[str, ...]              # quoted column identifiers come from the caller's _ident
    indexes: tuple[tuple[str, str], ...]  # (index name, CREATE INDEX statement)


def _recorded(conn: sqlite3.Connection, name: str) -> tuple[int, set[str], set[str]] | None:
    try:
        row = conn.execute(f"SELECT version, columns, indexes FROM {SCHEMA_TABLE} WHERE name = ?",
                           (name,)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    if row is None:
        return None
    return row[0], set(json.loads(row[1])), set(json.loads(row[2]))


def covered(conn: sqlite3.Connection, want: Declared) -> bool:
    """Whether the database already holds everything ``want`` declares (read only, no lock)."""
    rec = _recorded(conn, want.name)
    return rec is not None and set(want.columns) <= rec[1] and {n for n, _ in want.indexes} <= rec[2]


def ensure(conn: sqlite3.Connection, want: Declared, ident) -> None:
    """Brings the collection's table up to ``want`` under SQLite's write lock; a no-op when covered."""
    if covered(conn, want):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Checked again under the lock: the process that held it before us may have done it all.
        if not covered(conn, want):
            _migrate(conn, want, ident)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection, want: Declared, ident) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} "
                 "(name TEXT PRIMARY KEY, version INTEGER NOT NULL, columns TEXT NOT NULL, indexes TEXT NOT NULL)")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {want.table} "
                 "(_id TEXT PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL)")
    # Read inside the lock: another process may have added columns a moment ago.
    existing = {row[1] for row in conn.execute(f"PRAGMA table_info({want.table})")}
    for col in want.columns:
        if col not in existing:
            # A column added by an upgrade is backfilled from the documents already stored.
            conn.execute(f"ALTER TABLE {want.table} ADD COLUMN {ident(col)}")
            conn.execute(f"UPDATE {want.table} SET {ident(col)} = json_extract(doc, ?)", (f"$.{col}",))
    for _, statement in want.indexes:
        conn.execute(statement)
    rec = _recorded(conn, want.name)
    version, columns, indexes = rec if rec is not None else (0, set(), set())
    columns |= existing - {"_id", "version", "doc"}
    columns |= set(want.columns)
    indexes |= {n for n, _ in want.indexes}
    conn.execute(f"INSERT OR REPLACE INTO {SCHEMA_TABLE} (name, version, columns, indexes) VALUES (?, ?, ?, ?)",
                 (want.name, version + 1, json.dumps(sorted(columns)), json.dumps(sorted(indexes))))


def version_of(conn: sqlite3.Connection, name: str) -> int | None:
    """The schema version recorded for a collection (None before its first creation)."""
    rec = _recorded(conn, name)
    return rec[0] if rec else None
