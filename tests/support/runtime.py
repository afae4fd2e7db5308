"""Settings, credentials and tokens for tests that boot the embedded runtime or separate processes.

Plain helpers (no fixtures): the fixtures that use them live in tests/conftest.py.
"""
from __future__ import annotations

import os
import socket
import uuid

from shared.auth import Principal
from shared.config import Settings

AMQP_URL = os.environ.get("SANZHANG_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
SECRET = "test-secret-please-change-0123456789"
ADMIN = "test-admin-token"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def rabbitmq_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


def make_settings(tmp_path, **overrides) -> Settings:
    base = dict(amqp_url="memory://", data_dir=tmp_path, namespace="t" + uuid.uuid4().hex[:10],
                secret=SECRET, admin_token=ADMIN, outbox_poll=0.05, timer_poll=0.05, max_deliveries=3)
    base.update(overrides)
    return Settings(**base)


def token(runtime, role: str, townships=("430382100",), **kw) -> dict:
    tok = runtime.issuer.issue(Principal(role=role, townships=tuple(townships), **kw))
    return {"Authorization": f"Bearer {tok}"}
