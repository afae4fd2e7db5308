"""The unit tier's guard itself: sockets and threads are refused here, so nothing boots by accident."""
from __future__ import annotations

import socket
import threading

import pytest

from tests.unit.conftest import BootedInUnitTier


def test_a_thread_cannot_start_in_the_unit_tier():
    with pytest.raises(BootedInUnitTier, match="start a thread"):
        threading.Thread(target=lambda: None).start()


def test_a_connection_cannot_be_opened_in_the_unit_tier():
    with pytest.raises(BootedInUnitTier, match="network connection"):
        socket.create_connection(("127.0.0.1", 5672), timeout=0.1)
    with socket.socket() as sock, pytest.raises(BootedInUnitTier, match="network connection"):
        sock.connect(("127.0.0.1", 5672))


def test_a_server_cannot_listen_in_the_unit_tier():
    with socket.socket() as sock, pytest.raises(BootedInUnitTier, match="listen"):
        sock.bind(("127.0.0.1", 0))
