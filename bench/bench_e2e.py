"""End-to-end latency over the real RabbitMQ with the four services as separate processes: from a
report's POST to its lead's notification in notify's delivery log, at a steady rate.

    python -m bench.bench_e2e [--rate 200] [--seconds 20]

Latency per report = the delivery's created_at (notify) − the report's submitted_at (intake); both
are stamped by the same machine clock. It is split at the case's created_at (dispatch): the first hop
(intake's outbox → RabbitMQ → dispatch's consumer) and the second (dispatch's outbox → notify). Baseline in the same run: a raw pika round trip (publish
with confirm → consume → ack) at the same rate, the broker's own floor for one hop; the system
makes three hops (intake → dispatch → notify) plus three database writes per hop.
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pika

from bench import load
from bench.common import pct, table

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


def system_latency(rate: float, seconds: float) -> tuple[list[float], int, int, list[float], list[float]]:
    from shared.domain.ids import case_id_for
    from services.dispatch.demo_roster import demo_roster_csv
    from shared.domain.demo import DEMO_TOWNSHIP
    from services.dispatch.roster import import_roster
    from shared.auth import Principal, TokenIssuer
    from shared.clock import parse_iso
    from shared.storage import Index
    from tests.support.cluster import Cluster, call, wait_until
    from tests.support.runtime import ADMIN, SECRET

    cluster = Cluster(AMQP, Path(tempfile.mkdtemp(prefix="bench-e2e-")), {"SANZHANG_LOG_LEVEL": "WARNING",
                                                                           "SANZHANG_OUTBOX_POLL": "0.2"}).start_all()
    try:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        call("POST", cluster.base["dispatch"] + "/api/v1/admin/townships", {"code": DEMO_TOWNSHIP, "name": "清溪镇"}, admin)
        call("POST", cluster.base["dispatch"] + f"/api/v1/townships/{DEMO_TOWNSHIP}/roster?filename=d.csv",
             raw=demo_roster_csv(), headers={**admin, "Content-Type": "text/csv"})
        addresses = [h.address for h in import_roster(DEMO_TOWNSHIP, demo_roster_csv(), "d.csv").households]
        token = TokenIssuer(SECRET).issue(Principal(role="client", townships=(DEMO_TOWNSHIP,)))
        bodies = load.json_bodies([{"township": DEMO_TOWNSHIP, "address": addresses[i % len(addresses)],
                                    "category": "environment", "description": f"第{i}件：路边垃圾堆积",
                                    "reporter_phone": "13800000004", "channel": "wechat"} for i in range(2000)])
        time.sleep(2)  # notify has the contacts
        result = load.run(cluster.base["intake"] + "/api/v1/reports",
                          {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}, bodies,
                          duration=seconds, processes=2, threads=8, rate=rate)
        reports = cluster.store("intake").collection("reports", [Index.on("township")])
        deliveries = cluster.store("notify").collection("deliveries", [Index.on("township")])
        accepted = reports.find({"township": DEMO_TOWNSHIP})
        wait_until(lambda: deliveries.count({"township": DEMO_TOWNSHIP}) >= len(accepted), timeout=60,
                   what="all notifications", interval=0.5)
        sent = {d["case_id"]: parse_iso(d["created_at"]) for d in deliveries.find({"township": DEMO_TOWNSHIP})}
        cases = cluster.store("dispatch").collection("cases", [Index.on("township")])
        opened = {c["_id"]: parse_iso(c["created_at"]) for c in cases.find({"township": DEMO_TOWNSHIP})}
        done = [(parse_iso(r["submitted_at"]), opened[case_id_for(r["_id"])], sent[case_id_for(r["_id"])])
                for r in accepted if case_id_for(r["_id"]) in sent]
        latencies = [(at_notify - at_intake).total_seconds() for at_intake, _, at_notify in done]
        first = [(at_dispatch - at_intake).total_seconds() for at_intake, at_dispatch, _ in done]
        second = [(at_notify - at_dispatch).total_seconds() for _, at_dispatch, at_notify in done]
        return latencies, len(accepted), result["ok"], first, second
    finally:
        cluster.stop_all()


def pika_round_trip(rate: float, seconds: float) -> list[float]:
    queue = "bench.rt." + uuid.uuid4().hex[:6]
    setup = pika.BlockingConnection(pika.URLParameters(AMQP))
    setup.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    latencies: list[float] = []
    done = threading.Event()
    total = int(rate * seconds)

    def consume():
        conn = pika.BlockingConnection(pika.URLParameters(AMQP))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=32)

        def on_message(channel, method, props, body):
            latencies.append(time.time() - float(body))
            channel.basic_ack(method.delivery_tag)
            if len(latencies) >= total:
                channel.stop_consuming()

        ch.basic_consume(queue, on_message)
        ch.start_consuming()
        conn.close()
        done.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    pub = pika.BlockingConnection(pika.URLParameters(AMQP))
    ch = pub.channel()
    ch.confirm_delivery()
    next_at = time.monotonic()
    for _ in range(total):
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
        next_at += 1 / rate
        ch.basic_publish("", queue, str(time.time()).encode(), pika.BasicProperties(delivery_mode=2))
    done.wait(60)
    pub.close()
    setup.channel().queue_delete(queue)
    setup.close()
    return latencies


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_e2e")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args(argv)
    raw = pika_round_trip(args.rate, min(args.seconds, 10))
    lat, accepted, ok, first, second = system_latency(args.rate, args.seconds)
    print(f"## End-to-end latency at a steady {args.rate:.0f} reports/s for {args.seconds:.0f} s "
          "(four processes over RabbitMQ, SQLite)\n")
    print(table(["path", "p50 ms", "p99 ms", "max ms", "samples", "target"], [
        ["POST /api/v1/reports → lead's notification in the delivery log", pct(lat, 50) * 1000,
         pct(lat, 99) * 1000, max(lat) * 1000 if lat else float("nan"), len(lat), "p99 < 1000 ms"],
        ["… of which POST → case stored by dispatch (first hop)", pct(first, 50) * 1000, pct(first, 99) * 1000,
         max(first) * 1000 if first else float("nan"), len(first), ""],
        ["… of which case stored → notification in notify's log (second hop)", pct(second, 50) * 1000,
         pct(second, 99) * 1000, max(second) * 1000 if second else float("nan"), len(second), ""],
        ["baseline: raw pika publish (confirmed) → consume, one hop", pct(raw, 50) * 1000, pct(raw, 99) * 1000,
         max(raw) * 1000 if raw else float("nan"), len(raw), ""],
    ]))
    print(f"\n{accepted:,} reports accepted ({accepted / args.seconds:.0f}/s offered {args.rate:.0f}/s); "
          f"every one reached its lead's delivery log: {len(lat) == accepted}.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
