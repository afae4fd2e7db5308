"""Fixtures of the integration tier: every storage adapter behind one fixture."""
from __future__ import annotations

import os
import uuid

import mongomock
import pytest

from shared.storage.mongo import MongoStore
from shared.storage.sqlite import SQLiteStore

ADAPTERS = ["sqlite", "mongomock"] + (["mongodb"] if os.environ.get("SANZHANG_MONGO_URL") else [])


@pytest.fixture(params=ADAPTERS)
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "contract.db")
    elif request.param == "mongomock":
        s = MongoStore(mongomock.MongoClient(), "contract")
    else:
        s = MongoStore.from_url(os.environ["SANZHANG_MONGO_URL"], "contract_" + uuid.uuid4().hex[:8])
    yield s
    if request.param == "mongodb":
        s.client.drop_database(s.db.name)
    s.close()
