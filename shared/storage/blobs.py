"""The blob port: whole binary objects (residents' photos) beside a service's documents.

Three operations, each implemented natively by each adapter:

- ``put(blob_id, data, meta)``: stores once; a second put of the same id raises DuplicateKey
  (ids are derived from the upload, so a retried upload lands on the same blob);
- ``get(blob_id)`` → ``Blob`` (data and meta) or None;
- ``delete(blob_id)`` → whether it existed.

``meta`` is a small JSON mapping (township, content type, size, who uploaded); access decisions
are the caller's, made on ``meta`` and the owning document.

Adapters: **SQLite** keeps a BLOB table in the service's own database file; **MongoDB** uses GridFS
(pymongo's ``gridfs``: 255 KiB chunks in ``<bucket>.chunks``, the file document in
``<bucket>.files``), so a 5 MB photo never approaches the 16 MB document limit. ``blobs_for(store)``
picks the adapter that matches the service's document store.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Protocol

from .port import DuplicateKey, StorageError


@dataclass(frozen=True)
class Blob:
    blob_id: str
    data: bytes
    meta: dict[str, Any]


class BlobStore(Protocol):
    def put(self, blob_id: str, data: bytes, meta: dict[str, Any]) -> None: ...
    def get(self, blob_id: str) -> Blob | None: ...
    def delete(self, blob_id: str) -> bool: ...


def blobs_for(store, bucket: str = "blobs") -> BlobStore:
    """The blob adapter living in the same database as ``store`` (SQLiteStore or MongoStore)."""
    from .sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLiteBlobs(store, bucket)
    from .mongo import MongoStore

    if isinstance(store, MongoStore):
        return GridFSBlobs(store.db, bucket)
    raise StorageError(f"no blob adapter for {type(store).__name__}")


class SQLiteBlobs:
    def __init__(self, store, bucket: str = "blobs"):
        if not bucket.replace("_", "").isalnum():
            raise StorageError(f"bad bucket name {bucket!r}")
        self.store = store
        self.table = f'"b_{bucket}"'
        self.store.connection().execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (_id TEXT PRIMARY KEY, meta TEXT NOT NULL, data BLOB NOT NULL)")

    def put(self, blob_id: str, data: bytes, meta: dict[str, Any]) -> None:
        try:
            self.store.write(f"INSERT INTO {self.table} (_id, meta, data) VALUES (?, ?, ?)",
                             (blob_id, json.dumps(meta, ensure_ascii=False), sqlite3.Binary(data)))
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey(str(exc)) from exc

    def get(self, blob_id: str) -> Blob | None:
        row = self.store.connection().execute(
            f"SELECT meta, data FROM {self.table} WHERE _id = ?", (blob_id,)).fetchone()
        return Blob(blob_id, bytes(row[1]), json.loads(row[0])) if row else None

    def delete(self, blob_id: str) -> bool:
        return self.store.write(f"DELETE FROM {self.table} WHERE _id = ?", (blob_id,)).rowcount == 1


class GridFSBlobs:
    """A GridFS file is several documents: the chunks, then the file document that makes it visible.

    A put cut short (the primary stepped down, the process died) can leave chunks without a file
    document; gridfs then reports the next put of that id as FileExists although nothing can be
    read. Such orphans are removed and the put made again, so a retried upload is never taken
    for one already stored. Transient errors are retried as in the document adapter.
    """

    def __init__(self, db, bucket: str = "blobs"):
        import gridfs

        self._errors = gridfs.errors
        self.fs = gridfs.GridFS(db, collection=bucket)

    def put(self, blob_id: str, data: bytes, meta: dict[str, Any]) -> None:
        from .mongo_retry import retrying

        def attempt(_: int) -> None:
            try:
                # The file document's _id is ours: a second put of the same id is a duplicate key.
                self.fs.put(data, _id=blob_id, filename=blob_id, metadata=dict(meta))
                return
            except self._errors.FileExists as exc:
                if self.fs.exists(blob_id):
                    raise DuplicateKey(str(exc)) from exc
            self.fs.delete(blob_id)  # chunks of an earlier put that never finished
            self.fs.put(data, _id=blob_id, filename=blob_id, metadata=dict(meta))

        retrying(f"blobs.put {blob_id}", attempt)

    def get(self, blob_id: str) -> Blob | None:
        from .mongo_retry import retrying

        def attempt(_: int) -> Blob | None:
            try:
                out = self.fs.get(blob_id)
            except self._errors.NoFile:
                return None
            return Blob(blob_id, out.read(), dict(out.metadata or {}))

        return retrying(f"blobs.get {blob_id}", attempt)

    def delete(self, blob_id: str) -> bool:
        from .mongo_retry import retrying

        def attempt(_: int) -> bool:
            existed = self.fs.exists(blob_id)
            self.fs.delete(blob_id)
            return existed

        return retrying(f"blobs.delete {blob_id}", attempt)
