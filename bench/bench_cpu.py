"""CPU per report and per event in one process, without the network, gunicorn's threads or the
broker: the code's own cost, which a shared 2-vCPU host measures far more steadily than a rate
(issue 16: the rates of bench_intake and bench_pipeline moved ±20 % between runs of the same code).

    python -m bench.bench_cpu [--reports 2000] [--events 3000] [--rounds 3]

- intake: POST /api/v1/reports through intake's Flask app (its test client: routing, auth,
  validation, the instant answer, duplicates, the insert with its outbox, the resident's token),
  beside the bare Flask + marshmallow app of bench_intake the same way;
- dispatch: the report.submitted handler on a SQLite store in buffered batches of 32, as the
  consumer runs it (routing, the case with its deadlines, its figure columns, stints and link, the
  commit), beside storing each event as one row in batches of 32 through the sqlite3 module.

Each figure is the lowest of ``--rounds`` runs (process CPU time over the requests or events):
the least disturbed by whatever else the host does.
"""
from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import table

BATCH = 32


def _lowest(run, rounds: int) -> float:
    return min(run() for _ in range(rounds))


def intake_cpu(n: int, rounds: int) -> tuple[float, float]:
    from bench.bare_app import create_app as bare_app
    from bench.bench_intake import bodies
    from shared.auth import Principal
    from shared.runtime import Runtime
    from shared.web import create_app
    from tests.support.runtime import make_settings

    # A runtime that is never started: its relay, consumer and sweepers stay off, the events wait in
    # the outbox — what is measured is the request alone.
    runtime = Runtime(make_settings(Path(tempfile.mkdtemp(prefix="bench-cpu-")),
                                    amqp_url="amqp://guest:guest@127.0.0.1:5672/%2F"), ["intake"])
    ours = create_app(runtime).test_client()
    bare = bare_app().test_client()
    token = runtime.issuer.issue(Principal(role="client", townships=("430382100",)))
    json_only = {"Content-Type": "application/json"}
    with_token = {**json_only, "Authorization": f"Bearer {token}"}
    texts = bodies(500)

    def run(client, headers, count: int) -> float:
        started = time.process_time()
        for i in range(count):
            answer = client.post("/api/v1/reports", data=texts[i % len(texts)], headers=headers)
            if answer.status_code != 201:
                raise RuntimeError(f"{answer.status_code}: {answer.get_data(as_text=True)[:200]}")
        return (time.process_time() - started) * 1e6 / count

    run(ours, with_token, 200), run(bare, json_only, 200)  # warm: jieba's dictionary, caches
    return _lowest(lambda: run(ours, with_token, n), rounds), _lowest(lambda: run(bare, json_only, n), rounds)


def _report_events(n: int, households: list[str], township: str) -> list[dict]:
    """bench_pipeline's report.submitted events, decoded as the consumer hands them to the handler."""
    from bench.bench_pipeline import _events
    from shared.events import load_event

    return [load_event(e) for e in _events(n, households, township)]


def dispatch_cpu(n: int, rounds: int) -> tuple[float, float]:
    from services.dispatch.bootstrap import build
    from services.dispatch.demo_roster import demo_roster_csv
    from shared.clock import SystemClock
    from shared.domain.demo import DEMO_TOWNSHIP
    from shared.jsontext import dumps
    from shared.service import Context
    from shared.storage.sqlite import SQLiteStore
    from tests.support.runtime import make_settings

    data = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    store = SQLiteStore(data / "dispatch.db")
    parts = build(Context(settings=make_settings(data), clock=SystemClock(), store=store, waker=lambda: None))
    org = parts.api["org"]
    org.ensure_township(DEMO_TOWNSHIP, "清溪镇", DEMO_TOWNSHIP[:6])
    org.import_roster(DEMO_TOWNSHIP, demo_roster_csv(), "demo.csv", actor="bench")
    households = [h["_id"] for h in org.households.find({"township": DEMO_TOWNSHIP})]
    handle = parts.handlers["report.submitted"]

    def run_ours() -> float:
        events = _report_events(n, households, DEMO_TOWNSHIP)
        started = time.process_time()
        for i in range(0, n, BATCH):
            with store.buffered():
                for event in events[i:i + BATCH]:
                    handle(event)
        return (time.process_time() - started) * 1e6 / n

    raw = sqlite3.connect(data / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE IF NOT EXISTS events (_id TEXT PRIMARY KEY, township TEXT, doc TEXT)")

    def run_raw() -> float:
        events = _report_events(n, households, DEMO_TOWNSHIP)
        started = time.process_time()
        for i in range(0, n, BATCH):
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany("INSERT INTO events VALUES (?, ?, ?)",
                            [(e["id"], e["township"], dumps(e)) for e in events[i:i + BATCH]])
            raw.execute("COMMIT")
        return (time.process_time() - started) * 1e6 / n

    run_ours(), run_raw()  # warm
    return _lowest(run_ours, rounds), _lowest(run_raw, rounds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cpu")
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    intake, bare = intake_cpu(args.reports, args.rounds)
    dispatch, raw = dispatch_cpu(args.events, args.rounds)
    print("## CPU per report and per event, in one process (no network, no broker)\n")
    print(f"The lowest of {args.rounds} runs of process CPU time; {args.reports:,} reports, {args.events:,} events a run.\n")
    print(table(["path", "ours, CPU µs", "baseline", "baseline CPU µs", "ratio (baseline / ours)"],
                [["intake: POST /api/v1/reports (Flask test client)", intake,
                  "bare Flask + marshmallow, same client", bare, bare / intake],
                 ["dispatch: report.submitted handler + commit, batches of 32", dispatch,
                  "each event stored as one row by sqlite3, batches of 32", raw, raw / dispatch]]))
    print("\nWhat these leave out is what the rate benchmarks add: gunicorn and HTTP, the threads' turns at "
          "Python's lock, the relay's confirmed publishes and RabbitMQ's own CPU on the same cores.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
