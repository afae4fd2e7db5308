"""The same code as four separate processes over the real RabbitMQ (the distributed mode)."""
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

import pytest

from services.dispatch.demo_roster import DEMO_TOWNSHIP, demo_roster_csv
from shared.auth import Principal, TokenIssuer
from shared.messaging.topology import Names, delete_amqp
from shared.privacy import FULL_NUMBER
from tests.conftest import ADMIN, SECRET

SERVICES = ("intake", "dispatch", "escalation", "notify")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, headers=None, raw=None, timeout=10):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_until(fn, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


@pytest.fixture
def cluster(amqp_url, tmp_path):
    namespace = "e2e" + uuid.uuid4().hex[:8]
    ports = {name: free_port() for name in SERVICES}
    procs = {}
    logs = {}
    for name in SERVICES:
        env = {**os.environ, "SANZHANG_AMQP_URL": amqp_url, "SANZHANG_NAMESPACE": namespace,
               "SANZHANG_DATA_DIR": str(tmp_path), "SANZHANG_PORT": str(ports[name]),
               "SANZHANG_SECRET": SECRET, "SANZHANG_ADMIN_TOKEN": ADMIN, "SANZHANG_WEB_WORKERS": "1",
               "SANZHANG_OUTBOX_POLL": "0.1"}
        env.pop("SANZHANG_MONGO_URL", None)
        logs[name] = open(tmp_path / f"{name}.log", "wb")
        procs[name] = subprocess.Popen([sys.executable, "-m", "shared.cli", name], env=env,
                                       stdout=logs[name], stderr=subprocess.STDOUT, cwd=Path(__file__).parent.parent)
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        for name in SERVICES:
            wait_until(lambda n=name: call("GET", base[n] + "/readyz")[0] == 200, what=f"{name} ready")
        yield base, tmp_path
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            logs[name].close()
        delete_amqp(amqp_url, Names(namespace))


def test_report_flows_through_four_processes_over_rabbitmq(cluster):
    base, tmp_path = cluster
    admin = {"Authorization": f"Bearer {ADMIN}"}
    issuer = TokenIssuer(SECRET)
    client = {"Authorization": "Bearer " + issuer.issue(Principal(role="client", townships=(DEMO_TOWNSHIP,)))}
    staff = {"Authorization": "Bearer " + issuer.issue(Principal(role="staff", townships=(DEMO_TOWNSHIP,)))}

    status, _ = call("POST", base["dispatch"] + "/api/v1/admin/townships",
                     {"code": DEMO_TOWNSHIP, "name": "清溪镇"}, admin)
    assert status == 201
    status, imported = call("POST", base["dispatch"] + f"/api/v1/townships/{DEMO_TOWNSHIP}/roster?filename=demo.csv",
                            raw=demo_roster_csv(), headers={**admin, "Content-Type": "text/csv"})
    assert status == 201, imported
    status, tree = call("GET", base["dispatch"] + f"/api/v1/townships/{DEMO_TOWNSHIP}/org", headers=staff)
    staffed = [u for u in tree if u["level"] == "neighbourhood" and u["lead_name"]]
    target = staffed[0]

    # The household's address, read through the org API's neighbourhood: pick any household of it.
    from services.dispatch.roster import import_roster
    org = import_roster(DEMO_TOWNSHIP, demo_roster_csv(), "demo.csv")
    address = next(h.address for h in org.households if h.neighbourhood_id == target["id"])

    reports = []
    for i in range(20):
        status, created = call("POST", base["intake"] + "/api/v1/reports",
                               {"township": DEMO_TOWNSHIP, "address": address, "category": "environment",
                                "description": f"第{i}号：垃圾桶满了没人清运", "reporter_phone": "13800000002",
                                "channel": "wechat"}, client)
        assert status == 201, created
        reports.append(created)

    def all_assigned():
        views = [call("GET", base["intake"] + f"/api/v1/reports/{r['id']}", headers=client)[1] for r in reports]
        return views if all(v["status"] == "assigned" for v in views) else None

    views = wait_until(all_assigned, what="every report assigned")
    assert {v["handler"]["name"] for v in views} == {target["lead_name"]}
    assert {v["level"] for v in views} == {"neighbourhood"}

    def notified():
        _, log = call("GET", base["notify"] + f"/api/v1/deliveries?township={DEMO_TOWNSHIP}&limit=200", headers=staff)
        return log if len(log) >= 20 else None

    log = wait_until(notified, what="20 notifications")
    assert len(log) == 20  # exactly one per report
    assert {d["recipient_name"] for d in log} == {target["lead_name"]}
    assert all("待您接单" in d["text"] for d in log)

    status, spec = call("GET", base["intake"] + "/openapi.json")
    assert "/api/v1/reports" in spec["paths"] and "/api/v1/deliveries" not in spec["paths"]

    # Nothing printed a full phone number, in any process.
    import re
    for name in SERVICES:
        text = (tmp_path / f"{name}.log").read_text(errors="replace")
        assert not FULL_NUMBER.search(text), name
