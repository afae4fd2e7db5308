"""Pipeline ceiling: events/s through the busiest consumer (dispatch: report.submitted → route →
case stored with its outbox) against a raw pika consumer acking the same messages from the same
kind of queue (quorum) — the broker's own ceiling on this machine.

    python -m bench.bench_pipeline [--events 5000]

Both sides start with the queue already full, so the figure is consumption, not publishing.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pika

from bench.common import broker_cpu_seconds, broker_cpu_since, per_event_ms, table

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _events(n: int, households: list[str], township: str) -> list[dict]:
    from shared.events import make_event

    now = datetime.now(timezone.utc)
    out = []
    for i in range(n):
        rid = uuid.uuid4().hex
        out.append(make_event("report.submitted", township, {
            "report_id": rid, "tracking_no": f"B{i:07d}", "category": "environment", "tier": None,
            "description": "路灯坏了一个星期，晚上出行不安全", "channel": "wechat",
            "household_id": households[i % len(households)], "submitted_at": now.isoformat()},
            at=now, correlation_id=rid))
    return out


def bench_dispatch(n: int, workers: int) -> tuple[float, float, float | str]:
    """`sanzhang dispatch` as deployed (gunicorn, `workers` processes each with a consumer), fed
    from a full queue; the figures are cases stored per second, and the CPU milliseconds per event
    of dispatch's whole process tree until every case is also projected (its stint row written,
    whether by consuming its own case.assigned or otherwise) — CPU hardly moves with the load — and
    RabbitMQ's CPU milliseconds per event over the same window, on the same cores."""
    import os
    import signal
    import subprocess
    import sys

    from bench.bench_intake import _free_port, _wait, cpu_seconds
    from services.dispatch.demo_roster import demo_roster_csv
    from shared.domain.demo import DEMO_TOWNSHIP
    from services.dispatch.roster import import_roster
    from shared.messaging.publish import PikaPublisher
    from shared.messaging.topology import Names, declare_amqp, delete_amqp
    from shared.runtime import bindings
    from shared.storage import Index
    from shared.storage.sqlite import SQLiteStore
    from tests.support.cluster import call

    ns = "benchp" + uuid.uuid4().hex[:6]
    data = tempfile.mkdtemp(prefix="bench-pipeline-")
    port = _free_port()
    names = Names(ns)
    admin = "bench-admin-token"
    env = {**os.environ, "SANZHANG_AMQP_URL": AMQP, "SANZHANG_NAMESPACE": ns, "SANZHANG_DATA_DIR": data,
           "SANZHANG_PORT": str(port), "SANZHANG_SECRET": "bench-secret-0123456789abcdef",
           "SANZHANG_ADMIN_TOKEN": admin, "SANZHANG_WEB_WORKERS": str(workers), "SANZHANG_LOG_LEVEL": "WARNING"}
    declare_amqp(AMQP, names, 5, bindings())
    proc = subprocess.Popen([sys.executable, "-m", "shared.cli", "dispatch"], env=env, cwd=Path(__file__).parent.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/readyz")
        headers = {"Authorization": f"Bearer {admin}"}
        call("POST", base + "/api/v1/admin/townships", {"code": DEMO_TOWNSHIP, "name": "清溪镇"}, headers)
        call("POST", base + f"/api/v1/townships/{DEMO_TOWNSHIP}/roster?filename=d.csv", raw=demo_roster_csv(),
             headers={**headers, "Content-Type": "text/csv"})
        households = [h.id for h in import_roster(DEMO_TOWNSHIP, demo_roster_csv(), "d.csv").households]
        events = _events(n, households, DEMO_TOWNSHIP)
        db = SQLiteStore(Path(data) / f"{ns}_dispatch.db")
        cases = db.collection("cases", [Index.on("township")])
        stints = db.collection("stints", [])
        cpu, broker = cpu_seconds(proc.pid), broker_cpu_seconds()
        started = time.perf_counter()
        pub = PikaPublisher(AMQP, names.exchange)
        for i in range(0, n, 1000):
            pub.publish(events[i:i + 1000])
        pub.close()
        while cases.count({"township": DEMO_TOWNSHIP}) < n:
            if proc.poll() is not None:
                raise RuntimeError(f"sanzhang dispatch exited with {proc.returncode} mid-benchmark")
            if time.perf_counter() - started > 600:
                raise RuntimeError("dispatch did not finish within 10 minutes")
            time.sleep(0.1)
        rate = n / (time.perf_counter() - started)
        while stints.count({}) < n:  # the projection of each case (stints) is part of the work
            if time.perf_counter() - started > 900:
                raise RuntimeError("dispatch did not project every case within 15 minutes")
            time.sleep(0.1)
        return rate, 1000 * (cpu_seconds(proc.pid) - cpu) / n, per_event_ms(broker_cpu_since(broker), n)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        delete_amqp(AMQP, names, bindings())


def bench_raw(n: int, body: bytes) -> tuple[float, float | str]:
    queue = "benchraw." + uuid.uuid4().hex[:6]
    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    for _ in range(n):
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    got = 0
    done = threading.Event()

    def on_message(channel, method, props, data):
        nonlocal got
        json.loads(data)  # the consumer at least decodes what it gets
        channel.basic_ack(method.delivery_tag)
        got += 1
        if got == n:
            channel.stop_consuming()

    ch.basic_qos(prefetch_count=32)
    ch.basic_consume(queue, on_message)
    broker_start = broker_cpu_seconds()
    started = time.perf_counter()
    ch.start_consuming()
    elapsed = time.perf_counter() - started
    broker = broker_cpu_since(broker_start)
    ch.queue_delete(queue)
    conn.close()
    return n / elapsed, per_event_ms(broker, n)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_pipeline")
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args(argv)
    sample = json.dumps(_events(1, ["h-x"], "430382100")[0], ensure_ascii=False).encode()
    raw, raw_broker = bench_raw(args.events, sample)
    load = os.getloadavg()
    one, one_cpu, one_broker = bench_dispatch(args.events, 1)
    two, two_cpu, two_broker = bench_dispatch(args.events, 2)
    print("## Pipeline ceiling: the busiest consumer vs raw pika on a quorum queue\n")
    print(f"{args.events:,} events; raw pika consumes with prefetch 32 and acks each message. dispatch routes "
          "each report, stores its case with the case.assigned event in the outbox, and its relay publishes "
          "that event with confirms; it takes up to SANZHANG_CONSUME_BATCH (32) waiting messages into one "
          "transaction and acks them together after the commit.\n")
    print(table(["consumer", "events/s", "raw pika events/s", "ratio", "target", "dispatch CPU ms/event",
                 "RabbitMQ CPU ms/event"],
                [["dispatch, 1 gunicorn worker", one, raw, one / raw, "≥ 0.25", one_cpu, one_broker],
                 ["dispatch, 2 gunicorn workers (the default)", two, raw, two / raw, "≥ 0.25", two_cpu, two_broker],
                 ["raw pika (consume + ack only)", raw, raw, 1.0, "", "–", raw_broker]]))
    print(f"\nCPU ms/event: user + system CPU of dispatch's process tree (/proc), from the first publish until "
          "every case is stored and projected, over the events; RabbitMQ's (beam.smp) over the same window, on the "
          f"same {os.cpu_count()} cores — for dispatch it takes in the benchmark's report.submitted (published in that "
          "window), delivers it, and takes, routes and confirms the case.assigned; for raw pika it only delivers. "
          "On this host events/s cannot exceed the cores' milliseconds over dispatch's and RabbitMQ's together. "
          "Load average before → after: "
          f"{' '.join(f'{x:.2f}' for x in load)} → {' '.join(f'{x:.2f}' for x in os.getloadavg())}.")
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
