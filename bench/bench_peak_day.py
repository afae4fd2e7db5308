"""A peak day: a county-level city's day of reports (about 1,550 — a Jiangyin) at a ×4 surge,
replayed through the four services as separate processes over the real RabbitMQ, the day
compressed into about ten minutes of wall time.

    python -m bench.bench_peak_day                        # 1,550 × 4 over 10 minutes, 16 townships
    python -m bench.bench_peak_day --minutes 2 --surge 1  # a quick look

The day's shape is a citizens' hotline's: quiet at night, a morning peak at 9–11, a lunch dip, an
afternoon peak at 14–17 (HOURLY below), so the busiest compressed minute offers about twice the
average rate. Each report goes to a household of one of the city's townships (each township has the
demo roster imported over HTTP), in a category drawn from a civic mix, with its own Idempotency-Key;
the client retries a failed or unanswered POST with the same key, as the API tells clients to.

Measured: the POST's latency as the client sees it, and for each accepted report the time from
intake storing it (submitted_at) to notify writing the message to its 邻长 (the `case.assigned`
delivery's created_at) — both stamped by this machine's clock. Counted: accepted, stored, cases,
lead messages, lost (accepted but no case or no message) and doubled (two reports for one key, or
two lead messages for one case). Baseline in the same run: a raw pika publish-confirm-consume hop
at the day's peak rate, the broker's floor for one of the system's three hops.
"""
from __future__ import annotations

import argparse
import heapq
import http.client
import json
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

from bench.bench_e2e import AMQP, pika_round_trip
from bench.common import pct, table

# Share of a day's reports in each hour (0–23), China time: a citizens' hotline's shape.
HOURLY = [0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.8, 3.6, 6.2, 7.8, 8.0, 7.0,
          4.6, 4.4, 6.6, 7.2, 7.0, 6.2, 4.8, 4.0, 3.6, 3.0, 2.0, 1.2]
CATEGORIES = {"environment": 30, "road": 15, "water": 12, "power": 8, "dispute": 10, "other": 25}
TOWNSHIPS = ["澄江街道", "南闸街道", "云亭街道", "夏港街道", "申港街道", "利港街道", "璜土镇", "月城镇",
             "青阳镇", "徐霞客镇", "华士镇", "周庄镇", "新桥镇", "长泾镇", "顾山镇", "祝塘镇"]
WORDS = ["路灯不亮", "垃圾没人清运", "下水道堵了", "停水两天", "路面塌陷", "邻居噪音扰民", "电线老化",
         "井盖缺失", "楼道堆放杂物", "积水严重"]


def schedule(reports: int, seconds: float, rng: random.Random) -> list[float]:
    """Each report's send time in wall seconds from the start, following HOURLY."""
    total = sum(HOURLY)
    hours = rng.choices(range(24), weights=HOURLY, k=reports)
    return sorted((h + rng.random()) * 3600 / 86400 * seconds for h in hours) if total else []


def bodies(codes: list[str], addresses: list[str], count: int, rng: random.Random) -> list[tuple[str, bytes]]:
    cats, weights = zip(*CATEGORIES.items())
    out = []
    for i in range(count):
        body = {"township": rng.choice(codes), "address": rng.choice(addresses),
                "category": rng.choices(cats, weights=weights)[0],
                "description": f"{rng.choice(WORDS)}，第{i}件，请尽快处理",
                "reporter_phone": f"139{rng.randrange(10**8):08d}", "channel": "wechat"}
        out.append((f"peak-{i}", json.dumps(body, ensure_ascii=False).encode()))
    return out


class Replayer:
    """Open-loop sender: each report leaves at its time, on one of `threads` keep-alive connections;
    a failed POST is retried with the same Idempotency-Key (at most 5 tries)."""

    def __init__(self, url: str, token: str, threads: int = 24):
        self.url = urlparse(url)
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        self.threads = threads
        self.lock = threading.Lock()
        self.results: list[dict] = []

    def run(self, times: list[float], items: list[tuple[str, bytes]]) -> list[dict]:
        jobs = [(t, k, body) for t, (k, body) in zip(times, items)]
        heapq.heapify(jobs)
        start = time.monotonic()
        workers = [threading.Thread(target=self._work, args=(jobs, start)) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return self.results

    def _work(self, jobs, start):
        conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=30)
        while True:
            with self.lock:
                if not jobs:
                    break
                at, key, body = heapq.heappop(jobs)
            wait = start + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            conn, result = self._post(conn, key, body)
            result["late"] = time.monotonic() - start - at - result["latency"]
            with self.lock:
                self.results.append(result)
        conn.close()

    def _post(self, conn, key, body):
        began = time.perf_counter()
        status, tries, stale = 0, 0, 0
        while tries < 5 and not (200 <= status < 300 or 400 <= status < 500):
            tries += 1
            try:
                conn.request("POST", self.url.path, body=body, headers={**self.headers, "Idempotency-Key": key})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection (gunicorn's keepalive is 2 s); like
                # every HTTP client, open a new one and send again at once, not counted as a retry.
                conn.close()
                conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=30)
                tries, stale, status = tries - 1, stale + 1, 0
                if stale > 3:
                    tries, stale = tries + 1, 0
                continue
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=30)
                status = 0
            if status >= 500 or status == 0:
                time.sleep(0.2 * tries)
        return conn, {"key": key, "status": status, "tries": tries, "latency": time.perf_counter() - began}


def open_city(cluster, count: int) -> tuple[list[str], list[str]]:
    from services.dispatch.demo_roster import demo_roster_csv
    from services.dispatch.roster import import_roster
    from tests.support.cluster import call
    from tests.support.runtime import ADMIN

    admin = {"Authorization": f"Bearer {ADMIN}"}
    codes = [f"320281{k:03d}" for k in range(1, count + 1)]
    for code, name in zip(codes, TOWNSHIPS * (count // len(TOWNSHIPS) + 1)):
        status, _ = call("POST", cluster.base["dispatch"] + "/api/v1/admin/townships", {"code": code, "name": name}, admin)
        assert status in (200, 201), status
        status, body = call("POST", cluster.base["dispatch"] + f"/api/v1/townships/{code}/roster?filename=d.csv",
                            raw=demo_roster_csv(), headers={**admin, "Content-Type": "text/csv"}, timeout=60)
        assert status in (200, 201), (status, body)
    addresses = [h.address for h in import_roster(codes[0], demo_roster_csv(), "d.csv").households]
    return codes, addresses


def outcome(cluster, codes: list[str], results: list[dict], timeout: float) -> dict:
    from shared.clock import parse_iso
    from shared.domain.ids import case_id_for
    from shared.storage import Index
    from tests.support.cluster import wait_until

    reports = cluster.store("intake").collection("reports", [Index.on("township")])
    cases = cluster.store("dispatch").collection("cases", [Index.on("township")])
    deliveries = cluster.store("notify").collection("deliveries", [Index.on("township")])
    stored = [r for code in codes for r in reports.find({"township": code})]

    def lead_messages():
        return [d for code in codes for d in deliveries.find({"township": code})
                if d["event_type"] == "case.assigned" and d["recipient_kind"] == "lead"]

    accepted = sum(1 for r in results if 200 <= r["status"] < 300)
    try:
        wait_until(lambda: len(lead_messages()) >= len(stored), timeout=timeout, what="every lead's message",
                   interval=1.0)
    except AssertionError:
        pass  # counted below as lost
    messages = lead_messages()
    per_case = Counter(d["case_id"] for d in messages)
    first = {}
    for d in messages:
        at = parse_iso(d["created_at"])
        first[d["case_id"]] = min(at, first.get(d["case_id"], at))
    case_ids = {c["_id"] for code in codes for c in cases.find({"township": code})}
    latencies = [(first[case_id_for(r["_id"])] - parse_iso(r["submitted_at"])).total_seconds()
                 for r in stored if case_id_for(r["_id"]) in first]
    return {"accepted": accepted, "stored": len(stored), "cases": len(case_ids), "messages": len(messages),
            "lost": accepted - sum(1 for r in stored if case_id_for(r["_id"]) in first and case_id_for(r["_id"]) in case_ids),
            "doubled": sum(n - 1 for n in per_case.values()) + max(0, len(stored) - accepted),
            "latencies": latencies}


def replay(args) -> tuple[dict, list[dict], float]:
    from shared.auth import Principal, TokenIssuer
    from tests.support.cluster import Cluster
    from tests.support.runtime import SECRET

    rng = random.Random(args.seed)
    cluster = Cluster(AMQP, Path(tempfile.mkdtemp(prefix="bench-peak-")),
                      {"SANZHANG_LOG_LEVEL": "WARNING", "SANZHANG_OUTBOX_POLL": "0.2"}).start_all()
    try:
        codes, addresses = open_city(cluster, args.townships)
        token = TokenIssuer(SECRET).issue(Principal(role="client", townships=tuple(codes)))
        count = args.reports * args.surge
        times = schedule(count, args.minutes * 60, rng)
        time.sleep(2)  # notify has the contacts
        results = Replayer(cluster.base["intake"] + "/api/v1/reports", token).run(times, bodies(codes, addresses, count, rng))
        return outcome(cluster, codes, results, timeout=300), results, peak_rate(times)
    finally:
        cluster.stop_all()


def peak_rate(times: list[float], window: float = 10.0) -> float:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best / window


def report(args, result: dict, sent: list[dict], peak: float, raw: list[float]) -> None:
    count = args.reports * args.surge
    post = [r["latency"] for r in sent]
    lat = result["latencies"]
    statuses = Counter(r["status"] for r in sent)
    print(f"## Peak day: {args.reports:,} reports × {args.surge} surge = {count:,} over {args.minutes:g} min of "
          f"wall time ({args.townships} townships; four processes over RabbitMQ, SQLite)\n")
    print(f"Offered at {count / (args.minutes * 60):.1f} reports/s on average, {peak:.1f}/s in the busiest 10 s.\n")
    print(table(["path", "p50 ms", "p90 ms", "p99 ms", "max ms", "samples"], [
        ["POST /api/v1/reports as the client sees it (retries included)", pct(post, 50) * 1000, pct(post, 90) * 1000,
         pct(post, 99) * 1000, max(post) * 1000 if post else float("nan"), len(post)],
        ["report stored → its 邻长's message written", pct(lat, 50) * 1000, pct(lat, 90) * 1000,
         pct(lat, 99) * 1000, max(lat) * 1000 if lat else float("nan"), len(lat)],
        [f"baseline: raw pika publish (confirmed) → consume, one hop at {peak:.0f}/s", pct(raw, 50) * 1000,
         pct(raw, 90) * 1000, pct(raw, 99) * 1000, max(raw) * 1000 if raw else float("nan"), len(raw)],
    ]))
    late = [r["late"] for r in sent]
    print(f"\naccepted {result['accepted']:,} of {count:,} (statuses {dict(sorted(statuses.items()))}; "
          f"{sum(r['tries'] - 1 for r in sent)} retries); stored {result['stored']:,}; cases {result['cases']:,}; "
          f"lead messages {result['messages']:,}; **lost {result['lost']}, doubled {result['doubled']}**. "
          f"The client left on time (p99 {pct(late, 99) * 1000:.0f} ms late).\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_peak_day")
    parser.add_argument("--reports", type=int, default=1550, help="a day's reports before the surge")
    parser.add_argument("--surge", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10, help="the day compressed into this much wall time")
    parser.add_argument("--townships", type=int, default=16)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    raw_rate = peak_rate(schedule(args.reports * args.surge, args.minutes * 60, random.Random(args.seed)))
    raw = pika_round_trip(max(raw_rate, 1), 10)
    result, sent, peak = replay(args)
    report(args, result, sent, peak, raw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
