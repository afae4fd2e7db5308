"""Opening each storage adapter for the contract tests: SQLite on a temp file, the MongoDB adapter over
the wire (SecantusDB from the session's `mongo_url` fixture, or a real MongoDB when SANZHANG_MONGO_URL is set)."""
from __future__ import annotations

import uuid

from shared.storage.mongo import MongoStore
from shared.storage.sqlite import SQLiteStore

ADAPTERS = ["sqlite", "mongodb"]


def open_adapter(request, tmp_path, kind: str, prefix: str):
    if kind == "sqlite":
        return SQLiteStore(tmp_path / f"{prefix}.db")
    return MongoStore.from_url(request.getfixturevalue("mongo_url"), f"{prefix}_{uuid.uuid4().hex[:8]}")


def close_adapter(s) -> None:
    if isinstance(s, MongoStore):
        s.client.drop_database(s.db.name)
    s.close()
