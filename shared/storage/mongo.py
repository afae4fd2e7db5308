"""MongoDB adapter (production). Single-document atomic operations only, as a replica set does well."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.write_concern import WriteConcern

from .port import (DuplicateKey, Index, Metric, UndeclaredField, VersionConflict, Where, Sort, check_aggregate,
                   check_where, empty_row)


class MongoStore:
    def __init__(self, client, database: str, write_concern: str | int = "majority"):
        self.client = client
        self.db = client.get_database(database, write_concern=WriteConcern(w=write_concern))
        self._collections: dict[str, MongoCollection] = {}

    @classmethod
    def from_url(cls, url: str, database: str) -> "MongoStore":
        from pymongo import MongoClient

        # Short selection timeout: /readyz must answer quickly when the replica set is away.
        client = MongoClient(url, serverSelectionTimeoutMS=5000, tz_aware=True)
        return cls(client, database)

    def collection(self, name: str, indexes: Iterable[Index] = (), columns: Iterable[str] = ()) -> "MongoCollection":
        if name not in self._collections:
            self._collections[name] = MongoCollection(self.db[name], name, tuple(indexes), tuple(columns))
        return self._collections[name]

    def ping(self) -> bool:
        try:
            self.client.admin.command("ping")
            return True
        except PyMongoError:
            return False

    def close(self) -> None:
        self.client.close()


class MongoCollection:
    def __init__(self, coll, name: str, indexes: tuple[Index, ...], columns: tuple[str, ...] = ()):
        self.coll = coll
        self.name = name
        self.queryable = {f for ix in indexes for f in ix.fields} | {"_id", "version"}
        self.aggregatable = self.queryable | set(columns)
        for ix in indexes:
            keys = [(f, ASCENDING) for f in ix.fields]
            # Unique keys are strings; nulls stay out of the index, as SQLite lets NULLs repeat.
            opts: dict[str, Any] = {"unique": True} if ix.unique else {}
            if ix.unique:
                opts["partialFilterExpression"] = {f: {"$type": "string"} for f in ix.fields}
            coll.create_index(keys, name=f"ix_{'_'.join(ix.fields)}", **opts)

    def insert(self, doc: dict) -> dict:
        doc = dict(doc)
        doc.setdefault("version", 1)
        try:
            self.coll.insert_one(dict(doc))
        except DuplicateKeyError as exc:
            raise DuplicateKey(str(exc)) from exc
        return doc

    def replace(self, doc: dict, expected_version: int, previous: dict | None = None) -> dict:
        doc = dict(doc)
        doc["version"] = expected_version + 1
        try:
            result = self.coll.replace_one({"_id": doc["_id"], "version": expected_version}, doc)
        except DuplicateKeyError as exc:
            raise DuplicateKey(str(exc)) from exc
        if result.matched_count != 1:
            raise VersionConflict(f"{self.name}/{doc['_id']} is not at version {expected_version}")
        return doc

    def upsert(self, doc: dict) -> dict:
        body = {k: v for k, v in doc.items() if k not in ("_id", "version")}
        try:
            stored = self.coll.find_one_and_update(
                {"_id": doc["_id"]}, {"$set": body, "$inc": {"version": 1}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError as exc:
            raise DuplicateKey(str(exc)) from exc
        # $set leaves fields the new document dropped; remove them so upsert means "put".
        stale = [k for k in stored if k not in doc and k not in ("_id", "version")]
        if stale:
            stored = self.coll.find_one_and_update({"_id": doc["_id"]}, {"$unset": {k: "" for k in stale}},
                                                   return_document=ReturnDocument.AFTER)
        return stored

    def delete(self, doc_id: str) -> bool:
        return self.coll.delete_one({"_id": doc_id}).deleted_count == 1

    def claim_due(self, field: str, now: str, lease_until: str, limit: int = 100) -> list[dict]:
        if field not in self.queryable:
            raise UndeclaredField(field)
        claimed = []
        for _ in range(limit):
            # find_one_and_update is atomic per document: the replica set's own claim primitive.
            doc = self.coll.find_one_and_update(
                {field: {"$ne": None, "$lte": now}},
                {"$set": {field: lease_until}, "$inc": {"version": 1}},
                sort=[(field, ASCENDING)], return_document=ReturnDocument.AFTER)
            if doc is None:
                break
            claimed.append(doc)
        return claimed

    def get(self, doc_id: str) -> dict | None:
        return self.coll.find_one({"_id": doc_id})

    def _filter(self, where: Where | None) -> dict:
        check_where(where, self.queryable)
        return dict(where or {})

    def find(self, where: Where | None = None, sort: Sort | None = None,
             limit: int | None = None, skip: int = 0) -> list[dict]:
        cursor = self.coll.find(self._filter(where))
        if sort:
            for field, _ in sort:
                if field not in self.queryable:
                    raise UndeclaredField(field)
            cursor = cursor.sort([(f, DESCENDING if d < 0 else ASCENDING) for f, d in sort])
        if skip:
            cursor = cursor.skip(skip)
        if limit is not None:
            cursor = cursor.limit(limit)
        return list(cursor)

    def count(self, where: Where | None = None) -> int:
        return self.coll.count_documents(self._filter(where))

    def group_count(self, by: str, where: Where | None = None) -> dict[Any, int]:
        if by not in self.queryable:
            raise UndeclaredField(by)
        pipeline = [{"$match": self._filter(where)}, {"$group": {"_id": f"${by}", "n": {"$sum": 1}}}]
        return {row["_id"]: row["n"] for row in self.coll.aggregate(pipeline)}

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
            for result in self.coll.aggregate([{"$match": match}, {"$group": group}], allowDiskUse=True):
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
            for result in self.coll.aggregate(pipeline, allowDiskUse=True):
                key = key_of(result)
                row = rows.setdefault(key, empty_row(by, metrics) | dict(zip(by, key)))
                for name, _ in wanted:
                    row[name] = result.get(name)
        out = [empty_row(by, metrics) | {k: v for k, v in row.items() if v is not None or k in by}
               for row in rows.values()]
        if not by:
            out = out[:1] or [empty_row(by, metrics)]
        return out
