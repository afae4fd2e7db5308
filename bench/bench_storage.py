"""The SQLite adapter against raw sqlite3 doing the same statements, at 100,000 (and 1,000,000) cases.

    python -m bench.bench_storage                 # 100,000 cases
    python -m bench.bench_storage --cases 1000000

Operations: get by id; compare-and-set update; claim of due timers (UPDATE … RETURNING with a
lease); a figure query (count by status within a township). The baseline runs the very statements
the adapter issues, with none of the adapter's work around them (JSON encoding, column
extraction, filter building), so the ratio is the adapter's own overhead.
"""
from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import table
from shared.storage import Index
from shared.storage.sqlite import SQLiteStore

INDEXES = [Index.on("report_id", unique=True), Index.on("township"), Index.on("township", "status"),
           Index.on("unit_id"), Index.on("status"), Index.on("timer_due"), Index.on("outbox_due")]
TOWNSHIPS = [f"4303821{i:02d}" for i in range(20)]
STATUSES = ["assigned", "accepted", "resolved", "referred"]


def make_doc(i: int) -> dict:
    return {"_id": f"case-{i:08d}", "report_id": f"r-{i:08d}", "township": TOWNSHIPS[i % 20],
            "status": STATUSES[i % 4], "unit_id": f"u-{i % 5000}", "outbox_due": None,
            "timer_due": f"2027-01-01T00:00:{i % 60:02d}.000000Z", "level": "neighbourhood",
            "timeline": [{"at": "2026-11-02T01:00:00.000000Z", "type": "assigned", "actor": "system"}],
            "summary": "路灯坏了一个星期，晚上出行不安全", "version": 1}


def seed(path: Path, n: int):
    store = SQLiteStore(path)
    coll = store.collection("cases", INDEXES)
    conn = store.connection()
    cols = ["_id", "version", "doc"] + coll.columns
    sql = f"INSERT INTO {coll.table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    conn.execute("BEGIN")
    batch = []
    for i in range(n):
        d = make_doc(i)
        batch.append([d["_id"], 1, json.dumps(d, ensure_ascii=False)] + [d.get(c) for c in coll.columns])
        if len(batch) == 10_000:
            conn.executemany(sql, batch)
            batch.clear()
    conn.executemany(sql, batch)
    conn.execute("COMMIT")
    return store, coll


def timed(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - started)


def run(n: int, ops: int) -> list[list]:
    work = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    path = work / "cases.db"
    started = time.perf_counter()
    store, coll = seed(path, n)
    seed_s = time.perf_counter() - started
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    rnd = random.Random(7)
    ids = [f"case-{rnd.randrange(n):08d}" for _ in range(ops)]
    rows = []

    it = iter(ids * 2)
    adapter = timed(lambda: coll.get(next(it)), ops)
    it2 = iter(ids)
    baseline = timed(lambda: json.loads(raw.execute("SELECT doc FROM c_cases WHERE _id = ?", (next(it2),)).fetchone()[0]), ops)
    rows.append(["get by id", adapter, baseline, adapter / baseline])

    cas_ids = iter(ids)

    def adapter_cas():
        d = coll.get(next(cas_ids))
        d["status"] = "accepted"
        coll.replace(d, d["version"])

    adapter = timed(adapter_cas, ops)
    cas_ids2 = iter(ids)
    cols = coll.columns

    def raw_cas():
        doc_id = next(cas_ids2)
        doc = json.loads(raw.execute("SELECT doc FROM c_cases WHERE _id = ?", (doc_id,)).fetchone()[0])
        version = doc["version"]
        doc["status"] = "resolved"
        doc["version"] = version + 1
        sets = ", ".join(["version = ?", "doc = ?"] + [f'"{c}" = ?' for c in cols])
        raw.execute(f"UPDATE c_cases SET {sets} WHERE _id = ? AND version = ?",
                    [doc["version"], json.dumps(doc, ensure_ascii=False)] + [doc.get(c) for c in cols] + [doc_id, version])

    baseline = timed(raw_cas, ops)
    rows.append(["compare-and-set update", adapter, baseline, adapter / baseline])

    # Claims: every claim takes a batch of 100 due timers (all timers are due at "now").
    claims = max(10, ops // 100)
    now, lease = "2027-01-02T00:00:00.000000Z", "2027-01-03T00:00:00.000000Z"
    adapter = timed(lambda: coll.claim_due("timer_due", now, lease, 100), claims) * 100
    raw_sql = ("UPDATE c_cases SET timer_due = ?, version = version + 1, "
               "doc = json_set(doc, '$.timer_due', ?, '$.version', version + 1) WHERE _id IN "
               "(SELECT _id FROM c_cases WHERE timer_due IS NOT NULL AND timer_due <= ? ORDER BY timer_due LIMIT ?) RETURNING doc")
    lease2 = "2027-01-04T00:00:00.000000Z"
    baseline = timed(lambda: [json.loads(r[0]) for r in raw.execute(raw_sql, (lease2, lease2, now, 100)).fetchall()], claims) * 100
    rows.append(["due-timer claims (timers/s, batches of 100)", adapter, baseline, adapter / baseline])

    queries = max(20, ops // 500)
    town = iter(TOWNSHIPS * (queries // 20 + 2))
    adapter = timed(lambda: coll.group_count("status", {"township": next(town)}), queries)
    town2 = iter(TOWNSHIPS * (queries // 20 + 2))
    baseline = timed(lambda: raw.execute('SELECT "status", COUNT(*) FROM c_cases WHERE "township" = ? GROUP BY "status"',
                                         (next(town2),)).fetchall(), queries)
    rows.append(["figure query: count by status in a township", adapter, baseline, adapter / baseline])
    store.close()
    raw.close()
    size = path.stat().st_size / 1e6
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return rows, seed_s, size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_storage")
    parser.add_argument("--cases", type=int, nargs="+", default=[100_000])
    parser.add_argument("--ops", type=int, default=20_000)
    args = parser.parse_args(argv)
    print("## Storage: SQLite adapter vs raw sqlite3 (same statements)\n")
    for n in args.cases:
        rows, seed_s, size = run(n, args.ops)
        print(f"{n:,} cases (seeded in {seed_s:.1f} s, file {size:,.0f} MB), {args.ops:,} operations each:\n")
        print(table(["operation", "adapter ops/s", "raw sqlite3 ops/s", "ratio"], rows))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
