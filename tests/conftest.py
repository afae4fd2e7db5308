"""Shared fixtures: a whole system in one process on a fresh namespace, with an injected clock."""
from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timezone

import pytest

from shared.auth import Principal
from shared.clock import FakeClock
from shared.config import Settings
from shared.runtime import SERVICES, Runtime

AMQP_URL = os.environ.get("SANZHANG_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
SECRET = "test-secret-please-change-0123456789"
ADMIN = "test-admin-token"


def rabbitmq_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_url():
    # Never skip: the suite promises real-broker coverage, so a missing broker is a failure.
    if not rabbitmq_reachable():
        pytest.fail("RabbitMQ is not reachable at 127.0.0.1:5672 (start it: rabbitmq-server -detached)")
    return AMQP_URL


@pytest.fixture(scope="session")
def mongo_url():
    """A SecantusDB server (MongoDB's wire protocol) for this session; a real MongoDB when
    SANZHANG_MONGO_URL is set. Never skipped: if it cannot start, the tests that need it fail."""
    if os.environ.get("SANZHANG_MONGO_URL"):
        yield os.environ["SANZHANG_MONGO_URL"]
        return
    from tests.mongo_server import SecantusServer

    try:
        server = SecantusServer().start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server.url
    finally:
        server.stop()


def make_settings(tmp_path, **overrides) -> Settings:
    base = dict(amqp_url="memory://", data_dir=tmp_path, namespace="t" + uuid.uuid4().hex[:10],
                secret=SECRET, admin_token=ADMIN, outbox_poll=0.05, timer_poll=0.05, max_deliveries=3)
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def clock():
    return FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc))  # Monday 09:00 in Shaoshan


@pytest.fixture
def system(tmp_path, clock):
    """All four services in one process on kombu's memory transport and SQLite."""
    runtime = Runtime(make_settings(tmp_path), SERVICES, clock=clock).start()
    yield runtime
    runtime.stop()


@pytest.fixture
def web(system):
    from shared.web import create_app

    app = create_app(system)
    app.testing = True
    return app.test_client()


def token(runtime: Runtime, role: str, townships=("430382100",), **kw) -> dict:
    tok = runtime.issuer.issue(Principal(role=role, townships=tuple(townships), **kw))
    return {"Authorization": f"Bearer {tok}"}


ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


# The privacy scan of the whole run (tests/log_scan.py): every log line, 4xx/5xx body and dead letter.
from tests.log_scan import privacy_scan, pytest_terminal_summary  # noqa: E402,F401  (fixture and summary)
