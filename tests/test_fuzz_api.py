from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from shared.cli import _load_demo
from shared.clock import FakeClock
from shared.runtime import SERVICES, Runtime
from shared.web import create_app
from tests.conftest import ADMIN_HEADERS, make_settings, token


def _spec() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(make_settings(Path(tmp)), SERVICES)
        try:
            return create_app(runtime).test_client().get("/openapi.json").json
        finally:
            for store in runtime.stores.values():
                store.close()


schema = schemathesis.openapi.from_dict(_spec())


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory):
    clock = FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc))
    runtime = Runtime(make_settings(tmp_path_factory.mktemp("fuzz")), SERVICES, clock=clock).start()
    demo = _load_demo(runtime)
    app = create_app(runtime)
    app.testing = True
    yield runtime, app, demo
    runtime.stop()


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api(case, fuzz_world):
    case.call_and_validate(app=fuzz_world[1], headers=ADMIN_HEADERS)
