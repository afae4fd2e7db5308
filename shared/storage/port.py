"""The storage port: the few operations the services need, implemented natively by each adapter.

Filters are a deliberately small subset — equality, ``$in``, ``$ne`` and ranges — and only on
fields declared as indexes, so every query an adapter runs is an indexed one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ContextManager, Iterable, Mapping, Protocol, Sequence

Where = dict[str, Any]
Sort = list[tuple[str, int]]

RANGE_OPS = ("$lt", "$lte", "$gt", "$gte")
ALL_OPS = RANGE_OPS + ("$in", "$ne")


class StorageError(Exception):
    pass


class DuplicateKey(StorageError):
    """An insert hit an existing _id or a unique index: the work was already done."""


class VersionConflict(StorageError):
    """A compare-and-set lost to another writer (or the document is gone)."""


class StoreUnavailable(StorageError):
    """The database did not answer within the adapter's retry bound (e.g. no primary); nothing was
    written by the failed try. HTTP answers 503; a consumer leaves the message to be redelivered."""


class NeedsTransaction(Exception):
    """Raised inside a buffered unit (SQLiteStore.buffered) by what cannot wait for its commit: a
    query over rows the unit has changed, a claim, a write of many rows. Nothing is lost: the caller
    does the work again inside an ordinary transaction. Not a StorageError, so code that tolerates a
    store failure (``except StorageError``) lets it through to the unit's owner."""


class BufferConflict(Exception):
    """A buffered unit's commit found what it read changed meanwhile (a version moved, a key taken):
    nothing of the unit was stored, and the caller does its work again inside a transaction, where
    the conflict surfaces as it always did (VersionConflict, DuplicateKey)."""


class UndeclaredField(StorageError):
    """A query named a field that is not an index: it would scan the collection."""


@dataclass(frozen=True)
class Index:
    fields: tuple[str, ...]
    unique: bool = False
    # Only documents where this field is set (not null) are indexed — a partial index on SQLite,
    # where a query with an equality or range on the field (or ``$ne: None``) may use it. Most new
    # reports have no household, location or rating due: their inserts skip those indexes.
    # MongoDB keeps the full index (an index's options cannot change under its name there).
    present: str | None = None

    @staticmethod
    def on(*fields: str, unique: bool = False, present: str | None = None) -> "Index":
        if present is not None and present not in fields:
            raise ValueError(f"present={present!r} must be one of the index's fields")
        return Index(tuple(fields), unique, present)


METRIC_OPS = ("count", "sum", "min", "max", "avg", "percentile")


@dataclass(frozen=True)
class Metric:
    """One figure per group of an ``aggregate``, computed by the database.

    - ``count``: rows; with ``field``, rows where it is not null; with ``lt`` too, rows where it is
      below ``lt`` (e.g. deadlines already past).
    - ``sum`` (0 when nothing is summed), ``min``, ``max``, ``avg``: over the non-null values of a
      numeric column (store flags as 0/1: MongoDB's $sum ignores booleans).
    - ``percentile``: nearest rank among the non-null values — the value at rank ceil(q·n) in
      ascending order, so ``q=0.5`` of an even count is the lower middle value. ``q`` in (0, 1].
    """
    op: str
    field: str | None = None
    q: float | None = None
    lt: Any = None

    @staticmethod
    def count(field: str | None = None, lt: Any = None) -> "Metric":
        return Metric("count", field, lt=lt)

    @staticmethod
    def sum(field: str) -> "Metric":
        return Metric("sum", field)

    @staticmethod
    def percentile(field: str, q: float) -> "Metric":
        return Metric("percentile", field, q=q)

    @property
    def permille(self) -> int:
        """q in thousandths: rank = ceil(q·n) in integer arithmetic, identical in every adapter."""
        return int(round((self.q or 0) * 1000))


def check_aggregate(by: Sequence[str], metrics: Mapping[str, Metric], allowed: set[str]) -> None:
    for field in by:
        if field not in allowed:
            raise UndeclaredField(f"{field} is not a declared column")
    for name, metric in metrics.items():
        if name in by or not name.replace("_", "").isalnum():
            raise StorageError(f"bad metric name {name!r}")
        if metric.op not in METRIC_OPS:
            raise StorageError(f"unsupported metric {metric.op}")
        if metric.field is None and metric.op != "count":
            raise StorageError(f"{metric.op} needs a field")
        if metric.field is not None and metric.field not in allowed:
            raise UndeclaredField(f"{metric.field} is not a declared column")
        if metric.op == "percentile" and not (0 < metric.permille <= 1000):
            raise StorageError("percentile q must be in (0, 1]")
        if metric.lt is not None and (metric.op != "count" or metric.field is None):
            raise StorageError("lt applies to count of a field")


def empty_row(by: Sequence[str], metrics: Mapping[str, Metric]) -> dict:
    row: dict[str, Any] = {f: None for f in by}
    for name, metric in metrics.items():
        row[name] = 0 if metric.op in ("count", "sum") else None
    return row


def replace_each(collection, items: Sequence[tuple[dict, int, dict | None]]) -> list:
    """``replace_many`` for a store without multi-document transactions: one compare-and-set after
    the other, atomic per document only (a bulk write would not say which of them lost)."""
    results: list = []
    for doc, version, previous in items:
        try:
            results.append(collection.replace(doc, version, previous))
        except (VersionConflict, DuplicateKey) as exc:
            results.append(exc)
    return results


class Collection(Protocol):
    name: str

    def insert(self, doc: dict) -> dict: ...
    def get(self, doc_id: str) -> dict | None: ...
    def replace(self, doc: dict, expected_version: int, previous: dict | None = None) -> dict: ...
    # ``previous``: the stored document as the caller read it at expected_version; an optional
    # hint that lets an adapter write only what changed.
    def replace_many(self, items: Sequence[tuple[dict, int, dict | None]]) -> list[dict | StorageError]:
        """Several ``replace(doc, expected_version, previous)``, each still a compare-and-set: per
        item the stored document, or the VersionConflict / DuplicateKey it met (the others are
        stored all the same). SQLite runs them in one transaction (one commit for a sweep's batch);
        MongoDB, atomic per document, one after the other. An error of the store itself raises,
        and then none of them may have been stored."""
        ...
    def upsert(self, doc: dict) -> dict: ...
    def delete(self, doc_id: str) -> bool: ...
    def find(self, where: Where | None = None, sort: Sort | None = None,
             limit: int | None = None, skip: int = 0, fields: Sequence[str] | None = None) -> list[dict]:
        """``fields``: return only ``_id``, ``version`` and these top-level fields of each document (a
        field a document lacks is missing or null) — e.g. the few a duplicate suggestion shows."""
        ...
    def count(self, where: Where | None = None) -> int: ...
    def group_count(self, by: str, where: Where | None = None) -> dict[Any, int]: ...
    def claim_due(self, field: str, now: str, lease_until: str, limit: int = 100,
                  fields: Sequence[str] | None = None) -> list[dict]:
        """Atomically takes up to ``limit`` documents whose ``field`` is due (``<= now``) and sets it to
        ``lease_until`` (version counted up). ``fields``: return only ``_id``, ``version`` (after the
        claim) and these top-level fields — the outbox relay reads a claimed report's outbox, not
        the report (issue 16: decoding whole documents was most of its cost)."""
        ...
    def patch_many(self, at_versions: Sequence[tuple[str, int]], values: Mapping[str, Any]) -> set[str]:
        """Compare-and-set of the same top-level ``values`` on many documents: each document still at
        its given version gets them (and its version counted up); one written since is left as it is.
        Returns the ids changed. The outbox relay empties the outboxes the broker confirmed with it
        in one statement (SQLite) instead of one read-modify-write per document."""
        ...
    def transaction(self) -> ContextManager[None]:
        """Its store's ``transaction()`` (Store.transaction)."""
        ...
    def aggregate(self, by: Sequence[str], metrics: Mapping[str, Metric],
                  where: Where | None = None) -> list[dict]:
        """One row per distinct combination of ``by`` (declared columns), with each metric.

        ``where`` is on indexed fields only, as for find; ``by`` and metric fields may also be
        plain declared ``columns`` (stored as real columns in SQLite, no index of their own). With
        ``by=()`` the answer is exactly one row, zeros and nulls when nothing matched.
        """
        ...


class Store(Protocol):
    def collection(self, name: str, indexes: Iterable[Index] = (),
                   columns: Iterable[str] = ()) -> Collection:
        """``columns``: fields aggregated but never filtered on (no index of their own)."""
        ...
    def ping(self) -> bool: ...
    def schema_ready(self) -> bool:
        """Every collection declared by this process is in place in the database (readiness)."""
        ...
    def transaction(self) -> ContextManager[None]:
        """The calling thread's writes in the block, stored together: SQLite commits them as one
        transaction (a nested block is a savepoint, undone alone when it raises). MongoDB,
        atomic per document, stores each write as it is made — callers must stay correct either
        way (idempotent steps), and use it for fewer commits, never for atomicity."""
        ...
    def close(self) -> None: ...


def check_where(where: Where | None, allowed: set[str]) -> None:
    for key, cond in (where or {}).items():
        if key not in allowed:
            raise UndeclaredField(f"{key} is not an indexed field")
        if isinstance(cond, dict):
            bad = set(cond) - set(ALL_OPS)
            if bad:
                raise StorageError(f"unsupported operators {sorted(bad)}")
