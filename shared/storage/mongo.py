"""MongoDB adapter (production). Single-document atomic operations only, as a replica set does well."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Mapping, Sequence

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.write_concern import WriteConcern

from .mongo_retry import retrying
from .port import (DuplicateKey, Index, Metric, StorageError, UndeclaredField, VersionConflict, Where, Sort, check_aggregate,
                   check_where, empty_row, replace_each)


class MongoStore:
    def __init__(self, client, database: str, write_concern: str | int = "majority"):
        self.client = client
        self.db = client.get_database(database, write_concern=WriteConcern(w=write_concern))
        self._collections: dict[str, MongoCollection] = {}
        self._schema_seen = False

    @classmethod
    def from_url(cls, url: str, database: str) -> "MongoStore":
        from pymongo import MongoClient

        # Short selection timeout: /readyz must answer quickly when the replica set is away.
        # retryWrites is pymongo's default, stated because the failover story rests on it.
        client = MongoClient(url, serverSelectionTimeoutMS=5000, tz_aware=True, retryWrites=True)
        return cls(client, database)

    def collection(self, name: str, indexes: Iterable[Index] = (), columns: Iterable[str] = ()) -> "MongoCollection":
        if name not in self._collections:
            self._collections[name] = MongoCollection(self.db[name], name, tuple(indexes), tuple(columns))
        return self._collections[name]

    @contextmanager
    def transaction(self):
        """Each write is stored as it is made (atomic per document; no multi-document transaction,
        which needs a replica set's sessions): the block groups nothing (port.Store.transaction)."""
        yield

    def ping(self) -> bool:
        try:
            self.client.admin.command("ping")
            return True
        except PyMongoError:
            return False

    def schema_ready(self) -> bool:
        """Every declared index exists on the server (checked until true once; indexes are never dropped)."""
        if self._schema_seen:
            return True
        try:
            for coll in list(self._collections.values()):
                if not coll.index_names <= {ix["name"] for ix in coll.coll.list_indexes()}:
                    return False
        except PyMongoError:
            return False
        self._schema_seen = True
        return True

    def close(self) -> None:
        self.client.close()


def index_models(indexes: Iterable[Index]) -> list[IndexModel]:
    models = []
    for ix in indexes:
        keys = [(f, ASCENDING) for f in ix.fields]
        # Unique keys are strings; nulls stay out of the index, as SQLite lets NULLs repeat.
        # ``$gte: ""`` selects exactly the strings (MongoDB compares within a type only) and, being
        # a range, is implied by an equality on a string: a plain ``{field: "x"}`` lookup may use
        # the partial index. ``{$type: "string"}`` selects the same keys but is not implied that way.
        opts: dict[str, Any] = {"unique": True} if ix.unique else {}
        if ix.unique:
            opts["partialFilterExpression"] = {f: {"$gte": ""} for f in ix.fields}
        models.append(IndexModel(keys, name=f"ix_{'_'.join(ix.fields)}", **opts))
    return models


class MongoCollection:
    @contextmanager
    def transaction(self):
        yield  # as MongoStore.transaction: each write is stored as it is made

    def __init__(self, coll, name: str, indexes: tuple[Index, ...], columns: tuple[str, ...] = ()):
        self.coll = coll
        self.name = name
        self.queryable = {f for ix in indexes for f in ix.fields} | {"_id", "version"}
        self.aggregatable = self.queryable | set(columns)
        self.index_names = {f"ix_{'_'.join(ix.fields)}" for ix in indexes}
        models = index_models(indexes)
        if models:
            # createIndexes with the same keys, name and options is a no-op on the server, so any
            # number of processes may declare at once; an index whose options changed under the
            # same name is refused (IndexOptionsConflict) and stops the start, by design.
            retrying(f"{name}.create_indexes", lambda _: self.coll.create_indexes(models))

    def _call(self, what: str, op):
        return retrying(f"{self.name}.{what}", op)

    def insert(self, doc: dict) -> dict:
        doc = dict(doc)
        doc.setdefault("version", 1)

        def attempt(n: int) -> None:
            try:
                self.coll.insert_one(dict(doc))
            except DuplicateKeyError as exc:
                # On a retry the earlier try may have landed before the connection dropped.
                if n > 0 and self.coll.find_one({"_id": doc["_id"]}) == doc:
                    return
                raise DuplicateKey(str(exc)) from exc

        self._call("insert", attempt)
        return doc

    def replace(self, doc: dict, expected_version: int, previous: dict | None = None) -> dict:
        doc = dict(doc)
        doc["version"] = expected_version + 1

        def attempt(n: int) -> None:
            try:
                result = self.coll.replace_one({"_id": doc["_id"], "version": expected_version}, doc)
            except DuplicateKeyError as exc:
                raise DuplicateKey(str(exc)) from exc
            if result.matched_count != 1:
                if n > 0 and self.coll.find_one({"_id": doc["_id"]}) == doc:
                    return  # our earlier try landed: the version moved because of us
                raise VersionConflict(f"{self.name}/{doc['_id']} is not at version {expected_version}")

        self._call("replace", attempt)
        return doc

    def replace_many(self, items) -> list:
        return replace_each(self, items)

    def upsert(self, doc: dict) -> dict:
        body = {k: v for k, v in doc.items() if k not in ("_id", "version")}
        # One statement: the whole document is put (fields it dropped are gone) and the version
        # counted up, atomically — a pipeline update, so a retry never finds half a put.
        put = [{"$replaceWith": {"$mergeObjects": [
            {"$literal": body},
            {"_id": doc["_id"], "version": {"$add": [{"$ifNull": ["$version", 0]}, 1]}}]}}]

        def attempt(_: int) -> dict:
            try:
                return self.coll.find_one_and_update({"_id": doc["_id"]}, put, upsert=True,
                                                     return_document=ReturnDocument.AFTER)
            except DuplicateKeyError as exc:
                raise DuplicateKey(str(exc)) from exc

        return self._call("upsert", attempt)

    def delete(self, doc_id: str) -> bool:
        # A retry after a delete that landed answers False: "not there now" either way.
        return self._call("delete", lambda _: self.coll.delete_one({"_id": doc_id}).deleted_count == 1)

    def claim_due(self, field: str, now: str, lease_until: str, limit: int = 100,
                  fields: Sequence[str] | None = None) -> list[dict]:
        if field not in self.queryable:
            raise UndeclaredField(field)
        projection = None if fields is None else {"_id": 1, "version": 1, **{f: 1 for f in fields}}
        claimed = []
        for _ in range(limit):
            # find_one_and_update is atomic per document: the replica set's own claim primitive.
            # ``$lte`` on a string matches strings only (MongoDB's type bracketing), so null and
            # missing never match and the filter is one index range on ``field``.
            doc = self._call("claim_due", lambda _: self.coll.find_one_and_update(
                {field: {"$lte": now}},
                {"$set": {field: lease_until}, "$inc": {"version": 1}},
                sort=[(field, ASCENDING)], projection=projection, return_document=ReturnDocument.AFTER))
            if doc is None:
                break
            claimed.append(doc)
        return claimed

    def patch_many(self, at_versions: Sequence[tuple[str, int]], values: Mapping[str, Any]) -> set[str]:
        if any(k in ("_id", "version") for k in values):
            raise StorageError("patch_many sets fields, not _id or version")
        done: set[str] = set()
        for doc_id, version in at_versions:
            # One compare-and-set per document. A retry after a write that landed finds the version
            # moved and leaves the id out: the caller then merges with what is stored, which is safe.
            try:
                result = self._call("patch_many", lambda _: self.coll.update_one(
                    {"_id": doc_id, "version": version}, {"$set": dict(values), "$inc": {"version": 1}}))
            except DuplicateKeyError as exc:
                raise DuplicateKey(str(exc)) from exc
            if result.matched_count == 1:
                done.add(doc_id)
        return done

    def get(self, doc_id: str) -> dict | None:
        return self._call("get", lambda _: self.coll.find_one({"_id": doc_id}))

    def _filter(self, where: Where | None) -> dict:
        check_where(where, self.queryable)
        return dict(where or {})

    def find(self, where: Where | None = None, sort: Sort | None = None,
             limit: int | None = None, skip: int = 0, fields: Sequence[str] | None = None) -> list[dict]:
        query = self._filter(where)
        projection = None if fields is None else {"_id": 1, "version": 1, **{f: 1 for f in fields}}
        order = None
        if sort:
            for field, _ in sort:
                if field not in self.queryable:
                    raise UndeclaredField(field)
            order = [(f, DESCENDING if d < 0 else ASCENDING) for f, d in sort]

        def attempt(_: int) -> list[dict]:
            cursor = self.coll.find(query, projection)
            if order:
                cursor = cursor.sort(order)
            if skip:
                cursor = cursor.skip(skip)
            if limit is not None:
                cursor = cursor.limit(limit)
            return list(cursor)

        return self._call("find", attempt)

    def count(self, where: Where | None = None) -> int:
        query = self._filter(where)
        return self._call("count", lambda _: self.coll.count_documents(query))

    def group_count(self, by: str, where: Where | None = None) -> dict[Any, int]:
        if by not in self.queryable:
            raise UndeclaredField(by)
        pipeline = [{"$match": self._filter(where)}, {"$group": {"_id": f"${by}", "n": {"$sum": 1}}}]
        return {row["_id"]: row["n"] for row in self._call("group_count", lambda _: list(self.coll.aggregate(pipeline)))}

    def aggregate(self, by: Sequence[str], metrics: Mapping[str, Metric], where: Where | None = None) -> list[dict]:
        """A $group pipeline for counts and sums; per percentile field, $sort → $group/$push → $arrayElemAt."""
        by = tuple(by)
        check_aggregate(by, metrics, self.aggregatable)
        match = self._filter(where)
        gid = {f: f"${f}" for f in by} if by else None
        present = lambda f: {"$gt": [f"${f}", None]}  # noqa: E731 — not null and not missing
        plain = {n: m for n, m in metrics.items() if m.op != "percentile"}
        rows: dict[tuple, dict] = {}

        def key_of(result: dict) -> tuple:
            ident = result.get("_id") or {}
            return tuple(ident.get(f) for f in by)

        if plain or not metrics:
            group: dict[str, Any] = {"_id": gid}
            for name, m in plain.items():
                if m.op == "count" and m.field is None:
                    group[name] = {"$sum": 1}
                elif m.op == "count":
                    cond = present(m.field) if m.lt is None else {"$and": [present(m.field),
                                                                          {"$lt": [f"${m.field}", m.lt]}]}
                    group[name] = {"$sum": {"$cond": [cond, 1, 0]}}
                else:
                    group[name] = {f"${m.op}": f"${m.field}"}
            pipeline = [{"$match": match}, {"$group": group}]
            for result in self._call("aggregate", lambda _: list(self.coll.aggregate(pipeline, allowDiskUse=True))):
                key = key_of(result)
                rows[key] = {**dict(zip(by, key)), **{n: result.get(n) for n in plain}}
        by_field: dict[str, list[tuple[str, int]]] = {}
        for name, m in metrics.items():
            if m.op == "percentile":
                by_field.setdefault(m.field, []).append((name, m.permille))
        for field, wanted in by_field.items():
            # One sorted $push per field, however many of its percentiles are asked for.
            cond = dict(match)
            cond = {"$and": [cond, {field: {"$ne": None}}]} if field in cond else {**cond, field: {"$ne": None}}
            project = {}
            for name, permille in wanted:
                rank = {"$floor": {"$divide": [{"$add": [{"$multiply": [permille, "$n"]}, 999]}, 1000]}}
                project[name] = {"$arrayElemAt": ["$vals", {"$subtract": [rank, 1]}]}
            pipeline = [{"$match": cond}, {"$sort": {field: 1}},
                        {"$group": {"_id": gid, "vals": {"$push": f"${field}"}, "n": {"$sum": 1}}},
                        {"$project": project}]
            for result in self._call("aggregate", lambda _: list(self.coll.aggregate(pipeline, allowDiskUse=True))):
                key = key_of(result)
                row = rows.setdefault(key, empty_row(by, metrics) | dict(zip(by, key)))
                for name, _ in wanted:
                    row[name] = result.get(name)
        out = [empty_row(by, metrics) | {k: v for k, v in row.items() if v is not None or k in by}
               for row in rows.values()]
        if not by:
            out = out[:1] or [empty_row(by, metrics)]
        return out
