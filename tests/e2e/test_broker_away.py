"""A service started while RabbitMQ is away (issue: a worker that could not reach the broker at boot
exited, and gunicorn's master gave up — "Worker failed to boot" — so intake refused residents'
reports until someone restarted it). Now intake starts and serves without the broker: /healthz
answers, /readyz says 503 with ``broker: false``, a report is accepted into the outbox; when the
broker can be reached (a TCP proxy started in front of the real RabbitMQ), the topology is declared,
the consumer attaches, /readyz turns 200 and the report's event reaches dispatch's queue exactly once.
Lost again later (the proxy stopped, its connections cut), intake keeps accepting and stays ready
(200: reached once, people keep acting, only the messages wait) while /readyz's checks and
``sanzhang_broker_connected`` say the broker is away; the next report's event goes out once the
broker is back — each report's event once."""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager

import pika

from shared.auth import Principal, TokenIssuer
from shared.domain.demo import DEMO_TOWNSHIP
from tests.support.cluster import Cluster, call, free_port, wait_until
from tests.support.runtime import SECRET
from tests.support.tcp_proxy import TcpProxy


def _through(amqp_url: str, port: int) -> str:
    """The same broker URL (user, vhost) with 127.0.0.1:<port> as its address."""
    parts = urllib.parse.urlsplit(amqp_url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urllib.parse.urlunsplit((parts.scheme, f"{auth}127.0.0.1:{port}", parts.path, parts.query, ""))


def _messages(amqp_url: str, queue: str) -> list[dict]:
    """Every message now in ``queue`` (read and requeued: the queue keeps them)."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        seen, tags = [], []
        while True:
            method, _props, body = ch.basic_get(queue, auto_ack=False)
            if method is None:
                break
            seen.append(json.loads(body))
            tags.append(method.delivery_tag)
        for tag in tags:
            ch.basic_nack(tag, requeue=True)
        return seen
    finally:
        conn.close()


@contextmanager
def _intake_without_broker(amqp_url: str, tmp_path):
    """intake started through a TCP proxy in front of the real RabbitMQ, the proxy not started (the
    broker refused), once intake answers /healthz: (proxy, cluster, intake's address, a client's
    headers). Afterwards every process is stopped and the namespace deleted through the proxy."""
    upstream = urllib.parse.urlsplit(amqp_url)
    port = free_port()
    proxy = TcpProxy(port, (upstream.hostname or "127.0.0.1", upstream.port or 5672))   # not started: refused
    cluster = Cluster(_through(amqp_url, port), tmp_path)
    base = cluster.base["intake"]
    client = {"Authorization": "Bearer " + TokenIssuer(SECRET).issue(Principal(role="client", townships=(DEMO_TOWNSHIP,)))}
    try:
        cluster.start("intake", wait=False)
        wait_until(lambda: call("GET", base + "/healthz")[0] == 200, timeout=60, what="intake answers")
        yield proxy, cluster, base, client
    finally:
        for name in list(cluster.procs):
            cluster.stop(name)
        if proxy._server is None:
            proxy.start()   # stop_all deletes the namespace through the cluster's URL
        cluster.stop_all()
        proxy.stop()


def _connected(base: str) -> float:
    """intake's ``sanzhang_broker_connected`` gauge, as /metrics shows it."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith('sanzhang_broker_connected{service="intake"}')]
    assert len(values) == 1, text
    return values[0]


def test_intake_serves_without_the_broker_and_its_report_goes_out_once_it_is_back(amqp_url, tmp_path):
    with _intake_without_broker(amqp_url, tmp_path) as (proxy, cluster, base, client):
        status, ready = call("GET", base + "/readyz")
        assert status == 503 and ready["status"] == "not ready" and ready["checks"]["broker"] is False, ready
        assert ready["checks"]["store.intake"] is True

        status, created = call("POST", base + "/api/v1/reports", {
            "township": DEMO_TOWNSHIP, "address": "韶山村一组12号", "category": "environment",
            "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": "13800000001",
            "channel": "mini_program"}, client)
        assert status == 201, created
        time.sleep(3)   # a few of the link's retries: the worker and its master are still there
        assert cluster.procs["intake"].poll() is None
        assert call("GET", base + f"/api/v1/reports/{created['id']}", headers=client)[0] == 200
        assert call("GET", base + "/readyz")[0] == 503
        assert proxy.accepted == 0

        assert _connected(base) == 0

        proxy.start()   # the broker is back
        cluster.wait_ready("intake", timeout=60)
        assert call("GET", base + "/readyz")[1]["checks"]["broker"] is True
        assert _connected(base) == 1

        queue = f"{cluster.namespace}.dispatch"

        def submitted():
            return [m for m in _messages(amqp_url, queue)
                    if m["type"] == "report.submitted" and m["payload"]["report_id"] == created["id"]]

        wait_until(submitted, timeout=30, what="report.submitted in dispatch's queue")
        time.sleep(2)   # a second publish, if there were one, would be there by now
        assert len(submitted()) == 1
        assert cluster.procs["intake"].poll() is None

        # Lost again while running: still serving and still ready (reached once: the pod stays in its
        # Service), the checks and the gauge say the broker is away, a new report goes out once it is back.
        proxy.stop()
        status, later = call("POST", base + "/api/v1/reports", {
            "township": DEMO_TOWNSHIP, "address": "韶山村一组13号", "category": "environment",
            "description": "垃圾桶满了三天没人清运，气味很大", "reporter_phone": "13800000001",
            "channel": "mini_program"}, client)
        assert status == 201, later

        def away():
            status, ready = call("GET", base + "/readyz")
            return (status, ready) if ready["checks"]["broker"] is False else None

        status, ready = wait_until(away, timeout=30, what="the broker seen away")
        assert status == 200 and ready["status"] == "ready", ready
        assert ready["checks"]["consumer.intake"] is False and ready["checks"]["store.intake"] is True
        assert set(ready["waiting_for_broker"]) == {"broker", "consumer.intake"}
        assert _connected(base) == 0
        assert call("GET", base + "/healthz")[0] == 200
        proxy.start()
        wait_until(lambda: call("GET", base + "/readyz")[1]["checks"]["broker"] is True and _connected(base) == 1,
                   timeout=90, what="the broker seen back")
        assert "waiting_for_broker" not in call("GET", base + "/readyz")[1]

        def both():
            found = [m for m in _messages(amqp_url, queue) if m["type"] == "report.submitted"]
            return found if {m["payload"]["report_id"] for m in found} == {created["id"], later["id"]} else None

        wait_until(both, timeout=60, what="the second report's event")
        time.sleep(2)
        assert sorted(m["payload"]["report_id"] for m in both()) == sorted([created["id"], later["id"]])
        assert cluster.procs["intake"].poll() is None
        log = cluster.log_text("intake")
        assert "Worker failed to boot" not in log and "13800000001" not in log


def test_stopped_before_the_broker_came_back_it_exits_cleanly_and_the_next_start_sends_what_it_kept(amqp_url, tmp_path):
    with _intake_without_broker(amqp_url, tmp_path) as (proxy, cluster, base, client):
        status, created = call("POST", base + "/api/v1/reports", {
            "township": DEMO_TOWNSHIP, "address": "韶山村一组12号", "category": "environment",
            "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": "13800000001",
            "channel": "mini_program"}, client)
        assert status == 201, created
        started = time.monotonic()
        assert cluster.stop("intake") == 0          # SIGTERM: a graceful exit, not a crash
        assert time.monotonic() - started < 20

        proxy.start()
        cluster.start("intake")                     # waits until ready
        queue = f"{cluster.namespace}.dispatch"
        wait_until(lambda: [m for m in _messages(amqp_url, queue) if m["payload"].get("report_id") == created["id"]],
                   timeout=30, what="the kept report's event")
        time.sleep(2)
        assert len([m for m in _messages(amqp_url, queue) if m["type"] == "report.submitted"]) == 1
