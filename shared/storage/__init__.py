"""Opens a service's store from the settings: MongoDB when SANZHANG_MONGO_URL is set, else SQLite."""
from __future__ import annotations

from ..config import Settings
from .port import (BufferConflict, Collection, DuplicateKey, Index, Metric, NeedsTransaction, Store, StorageError,
                   StoreUnavailable, UndeclaredField, VersionConflict)

__all__ = ["open_store", "BufferConflict", "Collection", "DuplicateKey", "Index", "Metric", "NeedsTransaction", "Store",
           "StorageError", "StoreUnavailable", "UndeclaredField", "VersionConflict"]


def open_store(settings: Settings, service: str) -> Store:
    """Each service owns its own database: one SQLite file, or one MongoDB database, per service."""
    if settings.mongo_url:
        from .mongo import MongoStore

        return MongoStore.from_url(settings.mongo_url, f"{settings.namespace}_{service}")
    from .sqlite import SQLiteStore

    return SQLiteStore(settings.data_dir / f"{settings.namespace}_{service}.db", settings.sqlite_sync)
