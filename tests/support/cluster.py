"""Runs the four services as separate processes over the real RabbitMQ, for end-to-end and fault tests."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from shared.messaging.topology import Names, delete_amqp
from shared.runtime import bindings
from tests.support.runtime import ADMIN, SECRET

SERVICES = ("intake", "dispatch", "escalation", "notify")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, headers=None, raw=None, timeout=10):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_until(fn, timeout=30.0, what="condition", interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


class Cluster:
    def __init__(self, amqp_url: str, data_dir: Path, extra_env: dict | None = None,
                 per_service_env: dict[str, dict] | None = None, mongo_url: str | None = None):
        self.amqp_url = amqp_url
        self.data_dir = data_dir
        self.namespace = "e2e" + uuid.uuid4().hex[:8]
        self.ports = {name: free_port() for name in SERVICES}
        self.base = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.procs: dict[str, subprocess.Popen] = {}
        self.extra_env = extra_env or {}
        self.mongo_url = mongo_url or os.environ.get("SANZHANG_MONGO_URL") or None
        self.per_service_env = per_service_env or {}
        self._logs = {}

    def env(self, name: str) -> dict:
        env = {**os.environ, "SANZHANG_AMQP_URL": self.amqp_url, "SANZHANG_NAMESPACE": self.namespace,
               "SANZHANG_DATA_DIR": str(self.data_dir), "SANZHANG_PORT": str(self.ports[name]),
               "SANZHANG_SECRET": SECRET, "SANZHANG_ADMIN_TOKEN": ADMIN, "SANZHANG_WEB_WORKERS": "1",
               "SANZHANG_OUTBOX_POLL": "0.1", **self.extra_env, **self.per_service_env.get(name, {})}
        # With SANZHANG_MONGO_URL set the cluster stores in that MongoDB (databases named after this
        # cluster's namespace, dropped at the end); without it, in SQLite files under data_dir.
        if self.mongo_url:
            env["SANZHANG_MONGO_URL"] = self.mongo_url
        else:
            env.pop("SANZHANG_MONGO_URL", None)
        return env

    def start(self, name: str, wait: bool = True) -> None:
        log = self._logs.get(name) or open(self.data_dir / f"{name}.log", "ab")
        self._logs[name] = log
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "shared.cli", name], env=self.env(name),
                                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if wait:
            self.wait_ready(name)

    def wait_ready(self, name: str, timeout: float = 30) -> None:
        wait_until(lambda: call("GET", self.base[name] + "/readyz")[0] == 200, timeout=timeout,
                   what=f"{name} ready")

    def start_all(self) -> "Cluster":
        for name in SERVICES:
            self.start(name, wait=False)
        for name in SERVICES:
            self.wait_ready(name)
        return self

    def stop(self, name: str, sig=signal.SIGTERM, timeout: float = 40) -> int:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        for log in self._logs.values():
            log.close()
        delete_amqp(self.amqp_url, Names(self.namespace), bindings())
        if self.mongo_url:
            from pymongo import MongoClient

            client = MongoClient(self.mongo_url, serverSelectionTimeoutMS=5000)
            for service in SERVICES:
                client.drop_database(f"{self.namespace}_{service}")
            client.close()

    def log_text(self, name: str) -> str:
        return (self.data_dir / f"{name}.log").read_text(errors="replace")

    def store(self, service: str):
        if self.mongo_url:
            from shared.storage.mongo import MongoStore

            return MongoStore.from_url(self.mongo_url, f"{self.namespace}_{service}")
        from shared.storage.sqlite import SQLiteStore

        return SQLiteStore(self.data_dir / f"{self.namespace}_{service}.db")
