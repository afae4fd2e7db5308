"""Pipeline ceiling: events/s through the busiest consumer (dispatch: report.submitted → route →
case stored with its outbox) against a raw pika consumer acking the same messages from the same
kind of queue (quorum) — the broker's own ceiling on this machine.

    python -m bench.bench_pipeline [--events 5000]

Both sides start with the queue already full, so the figure is consumption, not publishing.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pika

from bench.common import table

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


def bench_dispatch(n: int) -> float:
    from services.dispatch.demo_roster import DEMO_TOWNSHIP, DEMO_TOWNSHIP_NAME, demo_roster_csv
    from shared.config import Settings
    from shared.messaging.publish import PikaPublisher
    from shared.messaging.topology import Names, declare_amqp, delete_amqp
    from shared.runtime import Runtime

    ns = "benchp" + uuid.uuid4().hex[:6]
    settings = Settings(amqp_url=AMQP, data_dir=Path(tempfile.mkdtemp()), namespace=ns,
                        secret="bench-secret-0123456789abcdef")
    names = Names(ns)
    declare_amqp(AMQP, names, settings.max_deliveries)
    try:
        runtime = Runtime(settings, ["dispatch"])
        org = runtime.service("dispatch").api["org"]
        org.ensure_township(DEMO_TOWNSHIP, DEMO_TOWNSHIP_NAME)
        org.import_roster(DEMO_TOWNSHIP, demo_roster_csv(), "demo.csv", actor="bench")
        households = [h["_id"] for h in org.households.find({"township": DEMO_TOWNSHIP})]
        events = _events(n, households, DEMO_TOWNSHIP)
        pub = PikaPublisher(AMQP, names.exchange)
        for i in range(0, n, 1000):
            pub.publish(events[i:i + 1000])
        pub.close()
        cases = runtime.service("dispatch").api["cases"].collection
        started = time.perf_counter()
        runtime.start()
        while cases.count({"township": DEMO_TOWNSHIP}) < n:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        runtime.stop()
        return n / elapsed
    finally:
        delete_amqp(AMQP, names)


def bench_raw(n: int, body: bytes) -> float:
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
    started = time.perf_counter()
    ch.start_consuming()
    elapsed = time.perf_counter() - started
    ch.queue_delete(queue)
    conn.close()
    return n / elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_pipeline")
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args(argv)
    sample = json.dumps(_events(1, ["h-x"], "430382100")[0], ensure_ascii=False).encode()
    raw = bench_raw(args.events, sample)
    ours = bench_dispatch(args.events)
    print("## Pipeline ceiling: the busiest consumer vs raw pika on a quorum queue\n")
    print(f"{args.events:,} events waiting in the queue; both consume with prefetch 32 and ack each message.\n")
    print(table(["consumer", "events/s", "raw pika events/s", "ratio", "target"],
                [["dispatch: report.submitted → case + outbox (1 process)", ours, raw, ours / raw, "≥ 0.25"]]))
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
