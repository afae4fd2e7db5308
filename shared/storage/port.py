"""The storage port: the few operations the services need, implemented natively by each adapter.

Filters are a deliberately small subset — equality, ``$in``, ``$ne`` and ranges — and only on
fields declared as indexes, so every query an adapter runs is an indexed one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

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


class UndeclaredField(StorageError):
    """A query named a field that is not an index: it would scan the collection."""


@dataclass(frozen=True)
class Index:
    fields: tuple[str, ...]
    unique: bool = False

    @staticmethod
    def on(*fields: str, unique: bool = False) -> "Index":
        return Index(tuple(fields), unique)


class Collection(Protocol):
    name: str

    def insert(self, doc: dict) -> dict: ...
    def get(self, doc_id: str) -> dict | None: ...
    def replace(self, doc: dict, expected_version: int) -> dict: ...
    def upsert(self, doc: dict) -> dict: ...
    def delete(self, doc_id: str) -> bool: ...
    def find(self, where: Where | None = None, sort: Sort | None = None,
             limit: int | None = None, skip: int = 0) -> list[dict]: ...
    def count(self, where: Where | None = None) -> int: ...
    def group_count(self, by: str, where: Where | None = None) -> dict[Any, int]: ...
    def claim_due(self, field: str, now: str, lease_until: str, limit: int = 100) -> list[dict]: ...


class Store(Protocol):
    def collection(self, name: str, indexes: Iterable[Index] = ()) -> Collection: ...
    def ping(self) -> bool: ...
    def close(self) -> None: ...


def check_where(where: Where | None, allowed: set[str]) -> None:
    for key, cond in (where or {}).items():
        if key not in allowed:
            raise UndeclaredField(f"{key} is not an indexed field")
        if isinstance(cond, dict):
            bad = set(cond) - set(ALL_OPS)
            if bad:
                raise StorageError(f"unsupported operators {sorted(bad)}")
