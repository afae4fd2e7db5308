"""The unit tier's guard: a unit test that boots anything fails loudly.

Unit tests exercise pure domain rules and the service layer with fakes. Opening a socket (a broker,
an HTTP server, a database) or starting a thread (a runtime, a sweeper, a fake provider server)
means the test belongs to a higher tier: move it to tests/integration, tests/system or tests/e2e.
"""
from __future__ import annotations

import socket
import threading

import pytest


class BootedInUnitTier(AssertionError):
    """Raised when a unit test reaches for the network or a thread."""


def _refuse(what: str):
    def refuse(*_args, **_kwargs):
        raise BootedInUnitTier(f"a unit test tried to {what}; it belongs to a higher tier")
    return refuse


@pytest.fixture(autouse=True)
def no_sockets_no_threads(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _refuse("open a network connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse("open a network connection"))
    monkeypatch.setattr(socket.socket, "bind", _refuse("listen on a socket"))
    monkeypatch.setattr(socket, "create_connection", _refuse("open a network connection"))
    monkeypatch.setattr(threading.Thread, "start", _refuse("start a thread"))
