"""SecantusDB, a single-node server speaking MongoDB's wire protocol over WiredTiger, for the tests.

The MongoDB adapter is exercised through pymongo over a real socket against it: the storage
contract, the four-process end-to-end test, a fault scenario, the explain() checks and the
failover-error tests. What it does not prove is written in docs/mongodb.md (write concern is
accepted and ignored; a single node has no replica-set failover).

Started once per test session on a free port, bound to 127.0.0.1 only, storing in a temporary
folder, with an empty configuration file so no secantusd.toml lying around (./, ~/.secantus,
/etc/secantus are otherwise auto-discovered) changes it. Test commands stay off and auth is off:
the server is reachable only from this host and lives as long as the session.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.cluster import free_port

STARTUP_SECONDS = 60


class SecantusServer:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="secantus-"))
        self.port = free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "secantusd.log"

    def start(self) -> "SecantusServer":
        config = self.dir / "secantusd.toml"
        config.write_text("# empty on purpose: every setting comes from the command line\n")
        # ``python -m secantus`` is the package's own secantusd-py entry point, run by this interpreter.
        cmd = [sys.executable, "-m", "secantus", "--config", str(config), "--host", "127.0.0.1",
               "--port", str(self.port), "--storage-path", str(self.dir / "data"), "--log-level", "WARNING"]
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                         start_new_session=True)
        except OSError as exc:
            raise RuntimeError(f"SecantusDB could not be started ({exc}); install the test extra: "
                               "pip install -e '.[test]'") from exc
        finally:
            log.close()
        self._wait_up()
        return self

    def _wait_up(self) -> None:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        deadline = time.monotonic() + STARTUP_SECONDS
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                client = MongoClient(self.url, serverSelectionTimeoutMS=1000)
                client.admin.command("ping")
                client.close()
                return
            except PyMongoError as exc:
                last = exc
                time.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
        self.stop()
        raise RuntimeError(f"SecantusDB did not come up on 127.0.0.1:{self.port} ({last!r}); its log:\n{tail}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def serving():
    """The URL of a MongoDB for a fixture to yield: SANZHANG_MONGO_URL when set, else a SecantusDB
    server started here and stopped when the fixture ends. Never skipped: if it cannot start, the
    tests that need it fail."""
    import pytest

    if os.environ.get("SANZHANG_MONGO_URL"):
        yield os.environ["SANZHANG_MONGO_URL"]
        return
    try:
        server = SecantusServer().start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server.url
    finally:
        server.stop()
