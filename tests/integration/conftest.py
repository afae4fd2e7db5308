"""Fixtures of the integration tier: every storage adapter behind one fixture."""
from __future__ import annotations

import pytest

from tests.support.fakes.memory_store import MemoryStore
from tests.support.stores import ADAPTERS, close_adapter, open_adapter


# The unit tier's in-memory fake keeps the same contract: it is checked here beside the real adapters.
@pytest.fixture(params=ADAPTERS + ["memory"])
def store(request, tmp_path):
    if request.param == "memory":
        s = MemoryStore()
        yield s
        s.close()
        return
    s = open_adapter(request, tmp_path, request.param, "contract")
    yield s
    close_adapter(s)
