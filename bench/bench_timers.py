"""SLA timers at scale: N pending timers in SQLite, a batch of them comes due at once.

    python -m bench.bench_timers                 # 100,000 pending timers (a quick run)
    python -m bench.bench_timers --timers 1000000 --due 10000        # issue 16's size (make bench)
    python -m bench.bench_timers --timers 1000000 --dir /tmp/t1m     # keeps the seeded file: the next
                                                                     # run with that --dir skips seeding

How the timers get there: a handful of real cases are opened through dispatch's own handler
(report.submitted → routed to its 邻长 on the demo roster), then cloned N times with new ids and
future deadlines, written by ``executemany`` straight into the cases table the SQLite adapter
created (same columns, same indexes, same JSON document), in transactions of 10,000 rows.

Then, each phase in a fresh process so its RSS is its own (resource.getrusage ru_maxrss):

* **dispatch worker**: the real dispatch service (Runtime with only "dispatch", nothing else
  started) runs its DueSweeper over ``timer_due`` at the configured poll; every due case is a
  breach of the accept deadline, so each firing records the breach and escalates the case to its
  group lead (chain look-ups, policy, working-day deadlines, two validated events, one
  compare-and-set write; a claim's writes in one transaction). The outbox relay is not running:
  publishing is measured elsewhere.
* **dispatch, 2 workers**: the same, as deployed (``SANZHANG_WEB_WORKERS=2``: each gunicorn worker
  runs its own sweeper), two processes claiming disjoint batches of the same burst; lateness over
  both processes' firings, CPU summed over both.
* **raw sqlite3 baseline**: the same claim statement (UPDATE … RETURNING with a lease) and, per
  claimed row, a JSON round trip and a compare-and-set UPDATE: the floor the storage sets.

"Late" is the time from the batch's due instant (or, if arming the batch took longer, the moment
it was committed) to the moment its firing was stored.

A kept file (``--dir``) holds a copy of the first ``--due`` rows as seeded (``bench_head``); every
phase starts by putting them back, so phases and runs — before and after a change — start alike.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path

NAMESPACE = "bench"
SECRET = "bench-secret-not-for-production-000"
CHUNK = 10_000
LEASE = timedelta(seconds=60)
START_AFTER = 1.0  # seconds between arming the batch and its due instant


def _settings(data_dir: str, poll: float = 1.0):
    from shared.config import Settings

    return Settings(data_dir=Path(data_dir), namespace=NAMESPACE, secret=SECRET, timer_poll=poll)


def _db(data_dir: str) -> Path:
    return Path(data_dir) / f"{NAMESPACE}_dispatch.db"


def _iso(when: datetime) -> str:
    from shared.clock import iso

    return iso(when)


def _cpu_s() -> float:
    """This process's CPU seconds (user + system, every thread): per firing, the figure a busy
    machine disturbs least."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- seeding ---------------------------------------------------------------------------------------

def _templates(runtime) -> list[dict]:
    """One real case per staffed neighbourhood of the demo roster, opened by dispatch's handler."""
    from shared.domain.ids import case_id_for
    from shared.cli import _load_demo
    from shared.events import load_event, make_event

    _load_demo(runtime)
    parts = runtime.service("dispatch")
    org, cases = parts.api["org"], parts.api["cases"]
    staffed = {u["_id"] for u in org.tree("430382100") if u["level"] == "neighbourhood" and u.get("lead")}
    households = [h for h in org.households.find({"township": "430382100"}) if h["neighbourhood_id"] in staffed]
    now = runtime.clock.now()
    templates = []
    for i, hh in enumerate(households):
        report_id = f"template{i:024d}"
        payload = {"report_id": report_id, "tracking_no": f"TPL{i:05d}", "category": "environment", "tier": None,
                   "description": "楼道灯不亮，老人夜里上下楼不安全", "channel": "mini_program",
                   "household_id": hh["_id"], "submitted_at": _iso(now)}
        parts.handlers["report.submitted"](load_event(make_event("report.submitted", "430382100", payload,
                                                                 at=now, correlation_id=report_id)))
        doc = cases.get(case_id_for(report_id))
        cases.collection.delete(doc["_id"])
        templates.append(doc)
    return templates


def _dispatch(data_dir: str, poll: float):
    """dispatch's Runtime as a worker has it once started — its SQLite log copied by a thread of
    its own (Runtime.start) — without the relay and consumers, which a burst of firings does not use."""
    from shared.runtime import Runtime
    from shared.storage.sqlite_checkpoint import CHECKPOINTER

    CHECKPOINTER.start()
    return Runtime(_settings(data_dir, poll), ["dispatch"], consume=False)


def seed(data_dir: str, n: int, head: int) -> dict:
    from shared.runtime import Runtime

    runtime = Runtime(_settings(data_dir), ["dispatch"], consume=False)
    collection = runtime.service("dispatch").api["cases"].collection
    templates = _templates(runtime)
    columns = collection.columns
    runtime.stop()

    cols = ["_id", "version", "doc"] + columns
    sql = f"INSERT INTO c_cases ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    conn = sqlite3.connect(_db(data_dir), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")  # seeding only; the measured phases use the adapter's settings
    rng = random.Random(7)
    base = datetime.now(timezone.utc)
    started = time.perf_counter()

    def rows(lo: int, hi: int):
        for i in range(lo, hi):
            doc = dict(templates[i % len(templates)])
            due = _iso(base + timedelta(days=1 + rng.random() * 29))
            doc.update(_id=f"{i:032x}", report_id=f"r{i:031x}", tracking_no=f"B{i:07d}", version=1,
                       outbox=[], outbox_due=None, seen=[], warned=["warn_accept"], accept_due=due,
                       timer={"kind": "accept", "step": doc["step"], "due": due}, timer_due=due)
            yield [doc["_id"], 1, json.dumps(doc, ensure_ascii=False)] + [_column(doc.get(c)) for c in columns]

    for lo in range(0, n, CHUNK):
        conn.execute("BEGIN")
        conn.executemany(sql, rows(lo, min(n, lo + CHUNK)))
        conn.execute("COMMIT")
    # What restore() puts back before each phase, and what a later run checks before reusing the file.
    conn.execute("CREATE TABLE bench_head AS SELECT rowid AS rid, * FROM c_cases WHERE rowid <= ?", (head,))
    conn.execute("CREATE TABLE bench_meta AS SELECT ? AS timers, ? AS head", (n, head))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows_per_s": n / seconds, "size_mb": _db(data_dir).stat().st_size / 2**20}


def _column(value):
    return int(value) if isinstance(value, bool) else value


def seeded(data_dir: str, n: int, due_batch: int) -> bool:
    """A kept file already holds ``n`` timers and a copy of at least ``due_batch`` rows as seeded."""
    if not _db(data_dir).exists():
        return False
    conn = sqlite3.connect(_db(data_dir))
    try:
        timers, head = conn.execute("SELECT timers, head FROM bench_meta").fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return timers == n and head >= due_batch


def restore(data_dir: str, due_batch: int) -> None:
    """Puts the first ``due_batch`` cases back as seeded (a phase before may have fired them)."""
    conn = sqlite3.connect(_db(data_dir), isolation_level=None, timeout=30)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(c_cases)")]
    names = ", ".join(f'"{c}"' for c in cols)
    conn.execute(f"INSERT OR REPLACE INTO c_cases (rowid, {names}) SELECT rid, {names} FROM bench_head "
                 "WHERE rid <= ?", (due_batch,))
    conn.close()


def arm(data_dir: str, due_batch: int, due: datetime) -> float:
    """Makes the first ``due_batch`` cases due at ``due`` (their accept deadline, their timer).
    Returns when that was committed (epoch seconds): no worker can see them before."""
    conn = sqlite3.connect(_db(data_dir), isolation_level=None, timeout=30)
    at = _iso(due)
    conn.execute("UPDATE c_cases SET timer_due = ?, doc = json_set(doc, '$.timer_due', ?, '$.accept_due', ?, "
                 "'$.timer.due', ?) WHERE rowid <= ?", (at, at, at, at, due_batch))
    conn.close()
    return time.time()


def _claim_sql(field: str = "timer_due") -> str:
    # The statement shared/storage/sqlite.py's claim_due runs.
    return (f"UPDATE c_cases SET {field} = ?, version = version + 1, "
            f"doc = json_set(doc, '$.{field}', ?, '$.version', version + 1) "
            f"WHERE _id IN (SELECT _id FROM c_cases WHERE {field} IS NOT NULL AND {field} <= ? "
            f"ORDER BY {field} LIMIT ?) RETURNING doc")


def _lateness(done: list[float], due_epoch: float, first_start: float) -> dict:
    """``due_epoch``: the later of the due instant and the arming's commit (before it, nobody could
    see the batch: arming 10,000 rows takes seconds on a busy machine)."""
    late = sorted((t - due_epoch) * 1000 for t in done)
    q = statistics.quantiles(late, n=100) if len(late) > 1 else late * 99
    span = max(done) - first_start
    return {"fired": len(done), "p50_ms": q[49], "p99_ms": q[98], "max_ms": late[-1],
            "per_s": len(done) / span if span > 0 else float("inf")}


# -- the measured phases ---------------------------------------------------------------------------

def run_worker(data_dir: str, due_batch: int, poll: float, batch: int) -> dict:
    runtime = _dispatch(data_dir, poll)
    api = runtime.service("dispatch").api
    sweeper, cases = api["sweeper"], api["cases"].collection
    sweeper.batch = batch
    now = datetime.now(timezone.utc)
    empty = _empty_claims(lambda: cases.claim_due("timer_due", _iso(now - timedelta(days=365)),
                                                  _iso(now + LEASE), batch))
    rss_before = _rss_mb()
    done: list[float] = []
    starts: list[float] = []
    _measure(sweeper, done, starts)
    restore(data_dir, due_batch)
    due = datetime.now(timezone.utc) + timedelta(seconds=START_AFTER)
    visible = max(due.timestamp(), arm(data_dir, due_batch, due))
    cpu = _cpu_s()
    sweeper.start()
    deadline = time.monotonic() + 600
    while len(done) < due_batch and time.monotonic() < deadline:
        time.sleep(0.05)
    sweeper.stop()
    cpu = _cpu_s() - cpu
    escalated = cases.count({"level": "group"})
    runtime.stop()
    return {**_lateness(done, visible, starts[0]), "rss_before_mb": rss_before, "rss_peak_mb": _rss_mb(),
            "escalated": escalated, "empty_claim_us": empty, "cpu_ms": cpu * 1000 / max(len(done), 1)}


def run_workers(data_dir: str, due_batch: int, poll: float, batch: int, processes: int = 2) -> dict:
    """As deployed: every gunicorn worker of dispatch runs its own sweeper (SANZHANG_WEB_WORKERS=2),
    each claiming its own batches (a claim is atomic). Lateness over all firings of all processes."""
    ctx = get_context("spawn")
    ready, out, fired, stop = ctx.Queue(), ctx.Queue(), ctx.Value("i", 0), ctx.Event()
    procs = [ctx.Process(target=_sweeping, args=(data_dir, poll, batch, k == 0, ready, out, fired, stop))
             for k in range(processes)]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=300)
    restore(data_dir, due_batch)
    due = datetime.now(timezone.utc) + timedelta(seconds=START_AFTER)
    visible = max(due.timestamp(), arm(data_dir, due_batch, due))
    deadline = time.monotonic() + 600
    while fired.value < due_batch and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    results = [out.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(60)
    done = [t for r in results for t in r["done"]]
    return {**_lateness(done, visible, min(r["start"] for r in results if r["start"])),
            "rss_before_mb": max(r["rss_before_mb"] for r in results), "rss_peak_mb": max(r["rss_peak_mb"] for r in results),
            "escalated": sum(r["escalated"] for r in results), "empty_claim_us": float("nan"),  # NaN: printed as –
            "cpu_ms": sum(r["cpu_s"] for r in results) * 1000 / max(len(done), 1)}


def _sweeping(data_dir: str, poll: float, batch: int, counts: bool, ready, out, fired, stop) -> None:
    """One dispatch process of ``run_workers``: sweeps until told to stop, then says what it fired."""
    runtime = _dispatch(data_dir, poll)
    api = runtime.service("dispatch").api
    sweeper = api["sweeper"]
    sweeper.batch = batch
    rss_before = _rss_mb()
    done: list[float] = []
    starts: list[float] = []
    _measure(sweeper, done, starts, fired)
    cpu = _cpu_s()
    sweeper.start()
    ready.put(os.getpid())
    stop.wait(900)
    sweeper.stop()
    cpu = _cpu_s() - cpu
    escalated = api["cases"].collection.count({"level": "group"}) if counts else 0
    out.put({"done": done, "start": starts[0] if starts else None, "cpu_s": cpu, "rss_before_mb": rss_before,
             "rss_peak_mb": _rss_mb(), "escalated": escalated})
    runtime.stop()


def _measure(sweeper, done: list[float], starts: list[float], fired=None) -> None:
    """Wraps the sweeper's work: a firing counts as done when it is stored (a batch's at its commit);
    ``fired``, a shared counter, tells a parent process how many are done."""
    fire, fire_batch = sweeper.work, getattr(sweeper, "work_batch", None)

    def measured(doc: dict) -> None:
        if not starts:
            starts.append(time.time())
        fire(doc)
        done.append(time.time())
        if fired is not None:
            with fired.get_lock():
                fired.value += 1

    def measured_batch(docs: list[dict]) -> dict:
        if not starts:
            starts.append(time.time())
        failed = fire_batch(docs)
        at = time.time()
        done.extend(at for doc in docs if doc["_id"] not in failed)
        if fired is not None:
            with fired.get_lock():
                fired.value += len(docs) - len(failed)
        return failed

    sweeper.work = measured
    if fire_batch is not None:
        sweeper.work_batch = measured_batch


def run_baseline(data_dir: str, due_batch: int, poll: float, batch: int) -> dict:
    conn = sqlite3.connect(_db(data_dir), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    claim = _claim_sql()
    now = datetime.now(timezone.utc)
    empty = _empty_claims(lambda: conn.execute(claim, (_iso(now + LEASE), _iso(now + LEASE),
                                                       _iso(now - timedelta(days=365)), batch)).fetchall())
    rss_before = _rss_mb()
    restore(data_dir, due_batch)
    due = datetime.now(timezone.utc) + timedelta(seconds=START_AFTER)
    visible = max(due.timestamp(), arm(data_dir, due_batch, due))
    done: list[float] = []
    starts: list[float] = []
    cpu = _cpu_s()
    deadline = time.monotonic() + 600
    while len(done) < due_batch and time.monotonic() < deadline:
        time.sleep(poll)  # the same rhythm as DueSweeper: sleep, then claim until a short batch
        while True:
            at = datetime.now(timezone.utc)
            rows = conn.execute(claim, (_iso(at + LEASE), _iso(at + LEASE), _iso(at), batch)).fetchall()
            for (text,) in rows:
                if not starts:
                    starts.append(time.time())
                doc = json.loads(text)
                doc["timer_due"] = None  # a minimal "firing": no policy, no events, no escalation
                version = doc["version"]
                doc["version"] = version + 1
                conn.execute("UPDATE c_cases SET version = ?, doc = ?, timer_due = NULL WHERE _id = ? AND version = ?",
                             (version + 1, json.dumps(doc, ensure_ascii=False), doc["_id"], version))
                done.append(time.time())
            if len(rows) < batch:
                break
    cpu = _cpu_s() - cpu
    conn.close()
    return {**_lateness(done, visible, starts[0]), "rss_before_mb": rss_before, "rss_peak_mb": _rss_mb(),
            "escalated": 0, "empty_claim_us": empty, "cpu_ms": cpu * 1000 / max(len(done), 1)}


def _empty_claims(claim, times: int = 200) -> float:
    """Microseconds for a claim that finds nothing due, with every timer pending: the index at work."""
    started = time.perf_counter()
    for _ in range(times):
        claim()
    return (time.perf_counter() - started) / times * 1e6


def _in_fresh_process(fn, *args):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_timers", description=__doc__.split("\n")[0])
    parser.add_argument("--timers", type=int, default=100_000, help="pending timers in the table (default 100,000)")
    parser.add_argument("--due", type=int, default=10_000, help="how many of them come due at the same instant")
    parser.add_argument("--poll", type=float, default=1.0, help="sweeper poll in seconds (SANZHANG_TIMER_POLL default)")
    parser.add_argument("--batch", type=int, default=200, help="claim batch (DueSweeper default)")
    parser.add_argument("--dir", help="work folder (default: a temporary one, removed afterwards)")
    args = parser.parse_args(argv)
    if not 0 < args.due <= args.timers:
        parser.error("--due must be between 1 and --timers")
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-timers-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if seeded(str(work), args.timers, args.due):
            print(f"reusing {args.timers:,} pending timers seeded earlier in {_db(str(work))}", flush=True)
        else:
            for leftover in work.glob(f"{NAMESPACE}_dispatch.db*"):
                leftover.unlink()
            print(f"seeding {args.timers:,} pending timers into {_db(str(work))} …", flush=True)
            took = _in_fresh_process(seed, str(work), args.timers, args.due)
            print(f"  {took['seconds']:.1f} s, {took['rows_per_s']:,.0f} rows/s, file {took['size_mb']:,.0f} MB",
                  flush=True)
        base = _in_fresh_process(run_baseline, str(work), args.due, args.poll, args.batch)
        worker = _in_fresh_process(run_worker, str(work), args.due, args.poll, args.batch)
        pair = run_workers(str(work), args.due, args.poll, args.batch)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    assert worker["escalated"] == args.due, f"escalated {worker['escalated']} of {args.due}"
    assert pair["escalated"] == args.due and pair["fired"] == args.due, f"two workers: {pair['escalated']}, {pair['fired']}"
    _print_table(args, [("dispatch worker (breach → escalate)", worker),
                        ("dispatch, 2 workers (as deployed: SANZHANG_WEB_WORKERS=2)", pair),
                                ("raw sqlite3 baseline (claim + CAS write)", base)])
    return 0


def _us(value: float) -> str:
    return "–" if value != value else f"{value:.0f}"  # NaN: not measured in that phase


def _print_table(args, results) -> None:
    print()
    print(f"{args.timers:,} pending timers, {args.due:,} due at one instant; poll {args.poll} s, "
          f"claim batch {args.batch}, lease {int(LEASE.total_seconds())} s; SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs")
    print()
    print("| process | RSS before MB | RSS peak MB | empty claim µs | late p50 ms | late p99 ms | late max ms "
          "| fired/s | CPU ms/firing |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results:
        print(f"| {name} | {r['rss_before_mb']:.0f} | {r['rss_peak_mb']:.0f} | {_us(r['empty_claim_us'])} | "
              f"{r['p50_ms']:,.0f} | {r['p99_ms']:,.0f} | {r['max_ms']:,.0f} | {r['per_s']:,.0f} | "
              f"{r['cpu_ms']:.2f} |")
    worker = results[0][1]
    print()
    print(f"breaches escalated: {worker['escalated']:,} at {worker['per_s']:,.0f}/s "
          f"(each: breach recorded, next holder found, deadlines in working days, 2 events staged, 1 CAS write)")


if __name__ == "__main__":
    raise SystemExit(main())
