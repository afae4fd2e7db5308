"""Fixtures shared by every tier, the tier markers, and the privacy scan of the whole run.

A test's tier is its folder (tests/unit, tests/integration, tests/system, tests/e2e): the marker is
applied here, so `pytest -m unit` and `make test-fast` select by folder and nothing needs tagging
by hand. Helpers that are not fixtures live in tests/support/.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from shared.clock import FakeClock
from tests.support.runtime import AMQP_URL, make_settings, rabbitmq_reachable

TIERS = ("unit", "integration", "system", "e2e")
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        try:
            tier = Path(item.fspath).relative_to(HERE).parts[0]
        except ValueError:
            continue
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


def pytest_addoption(parser):
    parser.addoption("--slow-relay", type=float, default=0.0, metavar="SECONDS",
                     help="hold every outbox publish this long first (in this process): a test that reads what "
                          "the relay publishes, or what consumers did with it, without system.drain() fails")


@pytest.fixture(autouse=True)
def slow_relay(request, monkeypatch):
    """``--slow-relay 0.15``: the relay's thread publishes on its own time, and a test must wait for it
    (``system.drain()``) before reading the bus or a consumer's work. Run now and then over the
    system tier: with the relay as fast as usual such a test passes almost always, and fails in CI
    once in a while (docs/testing.md)."""
    delay = request.config.getoption("--slow-relay")
    if delay:
        import time

        from shared.messaging.embedded_consume import BusPublisher
        from shared.messaging.publish import PikaPublisher

        for cls in (BusPublisher, PikaPublisher):
            def held(self, events, _publish=cls.publish):
                time.sleep(delay)
                return _publish(self, events)
            monkeypatch.setattr(cls, "publish", held)


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
    from tests.support.mongo_server import serving

    yield from serving()


@pytest.fixture
def clock():
    return FakeClock(datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc))  # Monday 09:00 in Shaoshan


@pytest.fixture
def system(tmp_path, clock):
    """All four services in one process on the embedded bus and SQLite (the sanzhang run default)."""
    from shared.runtime import SERVICES, Runtime

    runtime = Runtime(make_settings(tmp_path), SERVICES, clock=clock).start()
    yield runtime
    runtime.stop()


@pytest.fixture
def web(system):
    from shared.web import create_app

    app = create_app(system)
    app.testing = True
    return app.test_client()


@pytest.fixture
def demo(system):
    """The demo township's roster loaded, the SLA sweeper stopped so a test fires timers itself."""
    from tests.support.dispatch import demo_township

    return demo_township(system)


@pytest.fixture
def dataset(system, web, demo, clock):
    """Five cases through intake → dispatch with hand-computed figures (tests/support/supervision.py)."""
    from tests.support.supervision import build_dataset

    return build_dataset(system, web, clock)


# The privacy scan of the whole run (tests/support/log_scan.py): every log line, 4xx/5xx body and dead letter.
from tests.support.log_scan import privacy_scan, pytest_terminal_summary  # noqa: E402,F401  (fixture and summary)
