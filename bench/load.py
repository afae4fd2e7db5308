"""A small HTTP load generator: processes × threads on keep-alive connections, fixed duration or
fixed rate, recording each request's latency. Both a benchmark and its baseline use it, so the
client's own cost is the same on both sides."""
from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import threading
import time
from urllib.parse import urlparse


def _worker(url, headers, bodies, duration, rate, threads, out):
    parsed = urlparse(url)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def loop(index):
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        interval = (threads / rate) if rate else 0
        next_at = time.monotonic() + (index * interval / threads if rate else 0)
        i = index
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            if rate:
                if now < next_at:
                    time.sleep(next_at - now)
                next_at += interval
            body = bodies[i % len(bodies)]
            i += threads
            started = time.perf_counter()
            try:
                conn.request("POST", parsed.path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
                status = 0
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    ts = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((latencies, statuses))


def run(url: str, headers: dict, bodies: list[bytes], *, duration: float, processes: int = 2,
        threads: int = 8, rate: float | None = None) -> dict:
    """rate: total requests/s across all workers (open loop); None: as fast as possible."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    per_rate = rate / processes if rate else None
    procs = [ctx.Process(target=_worker, args=(url, headers, bodies[k::processes] or bodies, duration,
                                                per_rate, threads, out)) for k in range(processes)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - started
    latencies = [l for r in results for l in r[0]]
    statuses: dict[int, int] = {}
    for _, s in results:
        for k, v in s.items():
            statuses[k] = statuses.get(k, 0) + v
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    return {"ok": ok, "statuses": statuses, "per_s": ok / duration, "latencies": latencies, "wall": wall}


def json_bodies(items: list[dict]) -> list[bytes]:
    return [json.dumps(i, ensure_ascii=False).encode() for i in items]
