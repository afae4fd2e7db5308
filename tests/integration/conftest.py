"""Fixtures of the integration tier: every storage adapter behind one fixture."""
from __future__ import annotations

import os
import uuid

import mongomock
import pytest

from shared.storage.mongo import MongoStore
from shared.storage.sqlite import SQLiteStore
from tests.support.fakes.memory_store import MemoryStore

ADAPTERS = ["sqlite", "mongomock"] + (["mongodb"] if os.environ.get("SANZHANG_MONGO_URL") else [])


# The unit tier's in-memory fake keeps the same contract: it is checked here beside the real adapters.
@pytest.fixture(params=ADAPTERS + ["memory"])
def store(request, tmp_path):
    if request.param == "memory":
        s = MemoryStore()
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "contract.db")
    elif request.param == "mongomock":
        s = MongoStore(mongomock.MongoClient(), "contract")
    else:
        s = MongoStore.from_url(os.environ["SANZHANG_MONGO_URL"], "contract_" + uuid.uuid4().hex[:8])
    yield s
    if request.param == "mongodb":
        s.client.drop_database(s.db.name)
    s.close()
