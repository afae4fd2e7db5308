"""Safe start and upgrade: many processes creating and upgrading the same schema at the same moment.

The failure this guards against: the four services started separately on a fresh data folder, two
gunicorn workers each, died on first start with "duplicate column name" in 3 of 4 tries.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from shared.storage import Index
from shared.storage.sqlite import SQLiteStore
from shared.storage.sqlite_schema import version_of

ROOT = Path(__file__).resolve().parent.parent
# Collection → indexes as (fields, unique); V2 adds columns and indexes to V1, as an upgrade does.
V1 = {"things": [(["township"], False), (["code"], True)], "timers": [(["due"], False)]}
V2 = {"things": V1["things"] + [(["township", "status"], False), (["breach_count"], False)],
      "timers": [(["due"], False), (["owner"], False)]}

# Each child opens the store, waits at a barrier file so all start their declarations together,
# declares every collection, writes one document and prints what it sees.
CHILD = r"""
import json, os, sys, time
from shared.storage import Index
from shared.storage.sqlite import SQLiteStore
path, decl, go = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.002)
if path.startswith("mongodb://"):
    from shared.storage.mongo import MongoStore
    url, db = path.rsplit("#", 1)
    store = MongoStore.from_url(url, db)
else:
    store = SQLiteStore(path)
for name, ixs in decl.items():
    c = store.collection(name, [Index.on(*fields, unique=unique) for fields, unique in ixs])
    c.insert({"_id": f"{name}-{os.getpid()}", "township": "430382100", "due": None})
print(json.dumps({"ready": store.schema_ready()}))
"""


def _indexes(entry) -> list[Index]:
    return [Index.on(*fields, unique=unique) for fields, unique in entry]


def _race(path: Path | str, decl: dict, n: int, go: Path | None = None) -> None:
    go = go or path.with_suffix(".go")
    go.unlink(missing_ok=True)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), json.dumps(decl), str(go)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"ready": True}


def _table_shape(path: Path, name: str) -> tuple[set[str], set[str]]:
    conn = sqlite3.connect(path)
    cols = {r[1] for r in conn.execute(f'PRAGMA table_info("c_{name}")')}
    idx = {r[1] for r in conn.execute(f'PRAGMA index_list("c_{name}")') if not r[1].startswith("sqlite_")}
    conn.close()
    return cols, idx


def test_eight_processes_create_then_upgrade_a_fresh_schema_at_once_repeatedly(tmp_path):
    for round_ in range(10):
        path = tmp_path / f"round{round_}" / "svc.db"
        path.parent.mkdir()
        _race(path, V1, 8)
        assert _table_shape(path, "things") == ({"_id", "version", "doc", "township", "code"},
                                               {"ix_things_township", "ix_things_code"})
        # The upgrade: new columns and indexes, again eight processes at once on the same file.
        _race(path, V2, 8)
        cols, idx = _table_shape(path, "things")
        assert cols == {"_id", "version", "doc", "township", "code", "status", "breach_count"}
        assert idx == {"ix_things_township", "ix_things_code", "ix_things_township_status", "ix_things_breach_count"}
        assert _table_shape(path, "timers")[0] == {"_id", "version", "doc", "due", "owner"}
        store = SQLiteStore(path)
        assert store.collection("things", _indexes(V2["things"])).count() == 16
        # Each version was applied once by whichever process got the lock first; the others found it done.
        assert version_of(store.connection(), "things") == 2


def test_an_upgrade_backfills_and_an_older_declaration_stays_ready(tmp_path):
    path = tmp_path / "svc.db"
    old = SQLiteStore(path)
    things = old.collection("things", [Index.on("township")])
    things.insert({"_id": "a", "township": "t", "breach_count": 3})
    new = SQLiteStore(path).collection("things", [Index.on("township"), Index.on("breach_count")])
    assert [d["_id"] for d in new.find({"breach_count": 3})] == ["a"]
    # The process still running the older declaration finds everything it needs.
    assert old.schema_ready()
    fresh = SQLiteStore(tmp_path / "other.db")
    fresh.collection("things", [Index.on("township")])
    fresh.connection().execute('DROP INDEX "ix_things_township"')
    fresh.connection().execute('DELETE FROM "_schema"')
    assert not fresh.schema_ready()


def test_eight_processes_declare_the_same_mongodb_indexes_at_once(mongo_url, tmp_path):
    """createIndexes is idempotent on the server: any number of processes may declare together."""
    import uuid

    from pymongo import MongoClient

    db = "race_" + uuid.uuid4().hex[:8]
    client = MongoClient(mongo_url)
    try:
        for round_ in range(3):
            _race(f"{mongo_url}#{db}", V1 if round_ == 0 else V2, 8, go=tmp_path / f"go{round_}")
        names = {ix["name"]: ix for ix in client[db]["things"].list_indexes()}
        assert set(names) == {"_id_", "ix_township", "ix_code", "ix_township_status", "ix_breach_count"}
        assert names["ix_code"]["unique"] and names["ix_code"]["partialFilterExpression"] == {"code": {"$gte": ""}}
        assert client[db]["things"].count_documents({}) == 24
    finally:
        client.drop_database(db)
        client.close()


def test_four_services_with_three_workers_each_start_cleanly_on_fresh_data_repeatedly(amqp_url, tmp_path):
    """The reported failure, as an operator meets it: every service on its own, several gunicorn
    workers each, all started at once on an empty data folder."""
    import time as _time

    from tests.support.cluster import SERVICES, Cluster, call

    for round_ in range(3):
        data = tmp_path / f"fresh{round_}"
        data.mkdir()
        cluster = Cluster(amqp_url, data, extra_env={"SANZHANG_WEB_WORKERS": "3"})
        try:
            cluster.start_all()
            _time.sleep(1)  # a worker that died after the first answered /readyz would show now
            for name in SERVICES:
                log = cluster.log_text(name)
                trouble = max(log.find("Traceback"), log.find("OperationalError"))
                assert trouble < 0, f"{name}, round {round_}:\n" + log[max(0, trouble - 500):trouble + 3000]
                assert cluster.procs[name].poll() is None
                status, body = call("GET", cluster.base[name] + "/readyz")
                assert status == 200 and body["checks"][f"schema.{name}"] is True
        finally:
            cluster.stop_all()


def test_readyz_is_not_200_until_the_schema_is_in_place(amqp_url, tmp_path):
    """A service whose database is write-locked by another process (a long upgrade elsewhere) cannot
    create its tables; it must not call itself ready until it has."""
    import time as _time

    from tests.support.cluster import Cluster, call

    cluster = Cluster(amqp_url, tmp_path)
    path = tmp_path / f"{cluster.namespace}_escalation.db"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("PRAGMA journal_mode=WAL")
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("CREATE TABLE held (x)")
    try:
        cluster.start("escalation", wait=False)
        answers = []
        deadline = _time.monotonic() + 6
        while _time.monotonic() < deadline:
            try:
                answers.append(call("GET", cluster.base["escalation"] + "/readyz", timeout=1)[0])
            except OSError:
                answers.append(None)   # not listening yet, or no worker to answer
            _time.sleep(0.2)
        assert 200 not in answers, answers
        blocker.execute("COMMIT")
        cluster.wait_ready("escalation")
        status, body = call("GET", cluster.base["escalation"] + "/readyz")
        assert status == 200 and body["checks"]["schema.escalation"] is True
        assert version_of(sqlite3.connect(path), "referrals") == 1
    finally:
        blocker.close()
        cluster.stop_all()
