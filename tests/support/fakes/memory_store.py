"""An in-memory implementation of the storage port (shared/storage/port.py) for unit tests.

It keeps the port's contract rather than a database's internals: every document goes through a JSON
round trip (what SQLite and MongoDB store), queries and sorts are allowed on declared indexes only,
unique indexes and compare-and-set are enforced, and claims push the due field forward. The same
contract suite that checks SQLite and MongoDB runs on it (tests/integration/test_storage_contract.py,
tests/integration/test_supervision_storage.py), so a unit test on this fake sees what production sees.

It records every write in ``writes`` (operation, collection, _id), so a test can assert on what was
stored without reaching into the fake's dictionaries.
"""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Any, Iterable, Mapping, Sequence

from shared.storage.port import (RANGE_OPS, DuplicateKey, Index, Metric, StorageError, UndeclaredField,
                                 VersionConflict, Sort, Where, check_aggregate, check_where, empty_row,
                                 replace_each)


def _copy(doc: dict) -> dict:
    return json.loads(json.dumps(doc, ensure_ascii=False))


def _norm(value: Any) -> Any:
    # SQLite stores booleans as 0/1 and compares dicts/lists as their JSON text.
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _range_ok(value: Any, op: str, bound: Any) -> bool:
    if value is None:
        return False
    value, bound = _norm(value), _norm(bound)
    return {"$lt": value < bound, "$lte": value <= bound, "$gt": value > bound, "$gte": value >= bound}[op]


def _matches(doc: dict, where: Where | None) -> bool:
    for key, cond in (where or {}).items():
        value = doc.get(key)
        if isinstance(cond, dict):
            for op, arg in cond.items():
                if op in RANGE_OPS and not _range_ok(value, op, arg):
                    return False
                if op == "$in" and (value is None or _norm(value) not in {_norm(a) for a in arg}):
                    return False
                if op == "$ne" and not (value is not None if arg is None else
                                        value is None or _norm(value) != _norm(arg)):
                    return False
        elif cond is None:
            if value is not None:
                return False
        elif value is None or _norm(value) != _norm(cond):
            return False
    return True


def _sort_key(fields: Sort):
    def key(doc: dict):
        out = []
        for field, direction in fields:
            value = _norm(doc.get(field))
            # NULL sorts first ascending, as in SQLite and MongoDB.
            item = (value is not None, value if value is not None else 0)
            out.append(_Reversed(item) if direction < 0 else item)
        return tuple(out)
    return key


class _Reversed:
    def __init__(self, item):
        self.item = item

    def __lt__(self, other: "_Reversed") -> bool:
        return other.item < self.item

    def __eq__(self, other) -> bool:
        return isinstance(other, _Reversed) and other.item == self.item


class MemoryStore:
    def __init__(self):
        self._collections: dict[str, MemoryCollection] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.closed = False

    def collection(self, name: str, indexes: Iterable[Index] = (), columns: Iterable[str] = ()) -> "MemoryCollection":
        if name not in self._collections:
            self._collections[name] = MemoryCollection(self, name, tuple(indexes), tuple(columns))
        return self._collections[name]

    @contextmanager
    def transaction(self):
        # Like MongoDB: each write is stored as it is made.
        yield

    def ping(self) -> bool:
        return not self.closed

    def close(self) -> None:
        self.closed = True


class MemoryCollection:
    def __init__(self, store: MemoryStore, name: str, indexes: tuple[Index, ...], columns: tuple[str, ...]):
        self.store = store
        self.name = name
        self.docs: dict[str, dict] = {}
        indexed = {f for ix in indexes for f in ix.fields}
        self.unique = [ix.fields for ix in indexes if ix.unique]
        self.columns = (indexed | set(columns)) - {"_id", "version"}
        self.queryable = indexed | {"_id", "version"}
        self.aggregatable = self.columns | {"_id", "version"}

    # -- writes -------------------------------------------------------------------------------
    def _check_unique(self, doc: dict) -> None:
        for fields in self.unique:
            values = [doc.get(f) for f in fields]
            if any(v is None for v in values):
                continue  # like SQLite's UNIQUE, a missing value never collides
            for other in self.docs.values():
                if other["_id"] != doc["_id"] and [_norm(other.get(f)) for f in fields] == [_norm(v) for v in values]:
                    raise DuplicateKey(f"{self.name}: {fields} already holds {values}")

    def _record(self, op: str, doc_id: str) -> None:
        self.store.writes.append((op, self.name, doc_id))

    def insert(self, doc: dict) -> dict:
        doc = _copy(doc)
        doc.setdefault("version", 1)
        with self.store.lock:
            if doc["_id"] in self.docs:
                raise DuplicateKey(f"{self.name}/{doc['_id']} exists")
            self._check_unique(doc)
            self.docs[doc["_id"]] = doc
            self._record("insert", doc["_id"])
        return _copy(doc)

    def replace(self, doc: dict, expected_version: int, previous: dict | None = None) -> dict:
        doc = _copy(doc)
        doc["version"] = expected_version + 1
        with self.store.lock:
            current = self.docs.get(doc["_id"])
            if current is None or current["version"] != expected_version:
                raise VersionConflict(f"{self.name}/{doc['_id']} is not at version {expected_version}")
            self._check_unique(doc)
            self.docs[doc["_id"]] = doc
            self._record("replace", doc["_id"])
        return _copy(doc)

    def replace_many(self, items) -> list:
        return replace_each(self, items)

    def upsert(self, doc: dict) -> dict:
        doc = _copy(doc)
        with self.store.lock:
            current = self.docs.get(doc["_id"])
            doc["version"] = current["version"] + 1 if current else 1
            self._check_unique(doc)
            self.docs[doc["_id"]] = doc
            self._record("upsert", doc["_id"])
        return _copy(doc)

    def delete(self, doc_id: str) -> bool:
        with self.store.lock:
            found = self.docs.pop(doc_id, None) is not None
            if found:
                self._record("delete", doc_id)
        return found

    def transaction(self):
        return self.store.transaction()

    def claim_due(self, field: str, now: str, lease_until: str, limit: int = 100,
                  fields: Sequence[str] | None = None) -> list[dict]:
        if field not in self.columns:
            raise UndeclaredField(field)
        with self.store.lock:
            due = [d for d in self.docs.values() if d.get(field) is not None and d[field] <= now]
            due.sort(key=lambda d: d[field])
            claimed = []
            for doc in due[:limit]:
                doc[field] = lease_until
                doc["version"] += 1
                self._record("claim", doc["_id"])
                picked = doc if fields is None else {k: doc.get(k) for k in ("_id", "version", *fields)}
                claimed.append(_copy(picked))
        return claimed

    def patch_many(self, at_versions: Sequence[tuple[str, int]], values: Mapping[str, Any]) -> set[str]:
        done = set()
        with self.store.lock:
            for doc_id, version in at_versions:
                current = self.docs.get(doc_id)
                if current is None or current["version"] != version:
                    continue
                doc = {**current, **_copy(dict(values)), "version": version + 1}
                self._check_unique(doc)
                self.docs[doc_id] = doc
                self._record("patch", doc_id)
                done.add(doc_id)
        return done

    # -- reads --------------------------------------------------------------------------------
    def get(self, doc_id: str) -> dict | None:
        doc = self.docs.get(doc_id)
        return _copy(doc) if doc is not None else None

    def _select(self, where: Where | None) -> list[dict]:
        check_where(where, self.queryable)
        return [d for d in self.docs.values() if _matches(d, where)]

    def find(self, where: Where | None = None, sort: Sort | None = None,
             limit: int | None = None, skip: int = 0, fields: Sequence[str] | None = None) -> list[dict]:
        rows = self._select(where)
        if sort:
            for field, _ in sort:
                if field not in self.queryable:
                    raise UndeclaredField(field)
            rows.sort(key=_sort_key(sort))
        rows = rows[skip:] if limit is None else rows[skip:skip + limit]
        if fields is not None:
            rows = [{k: d.get(k) for k in ("_id", "version", *fields)} for d in rows]
        return [_copy(d) for d in rows]

    def count(self, where: Where | None = None) -> int:
        return len(self._select(where))

    def group_count(self, by: str, where: Where | None = None) -> dict[Any, int]:
        if by not in self.queryable:
            raise UndeclaredField(by)
        out: dict[Any, int] = {}
        for doc in self._select(where):
            out[doc.get(by)] = out.get(doc.get(by), 0) + 1
        return out

    def aggregate(self, by: Sequence[str], metrics: Mapping[str, Metric], where: Where | None = None) -> list[dict]:
        by = tuple(by)
        check_aggregate(by, metrics, self.aggregatable)
        groups: dict[tuple, list[dict]] = {}
        for doc in self._select(where):
            groups.setdefault(tuple(doc.get(f) for f in by), []).append(doc)
        plain = any(m.op != "percentile" for m in metrics.values()) or not metrics
        if not by:
            groups.setdefault((), [])
        out = []
        for key, docs in groups.items():
            row = empty_row(by, metrics) | dict(zip(by, key))
            has_values = False
            for name, metric in metrics.items():
                row[name], found = _metric(metric, docs)
                has_values = has_values or found
            if plain or has_values or not by:
                out.append(row)
        return out


def _metric(metric: Metric, docs: list[dict]) -> tuple[Any, bool]:
    """The metric over one group, and whether the group had a value for a percentile."""
    if metric.op == "count" and metric.field is None:
        return len(docs), False
    values = [_norm(d.get(metric.field)) for d in docs if d.get(metric.field) is not None]
    if metric.op == "count":
        if metric.lt is not None:
            return sum(1 for v in values if v < _norm(metric.lt)), False
        return len(values), False
    if metric.op == "sum":
        return sum(values), False
    if not values:
        return None, False
    if metric.op == "min":
        return min(values), False
    if metric.op == "max":
        return max(values), False
    if metric.op == "avg":
        return sum(values) / len(values), False
    ordered = sorted(values)
    rank = (metric.permille * len(ordered) + 999) // 1000
    if metric.op == "percentile":
        return ordered[rank - 1], True
    raise StorageError(f"unsupported metric {metric.op}")
