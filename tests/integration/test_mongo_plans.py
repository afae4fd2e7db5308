"""Every query the services send to MongoDB on the hot path is served by an index.

The whole system runs in one process with every store in SecantusDB (MongoDB's wire protocol) —
a report submitted, assigned, notified; the resident's view; the lead's inbox; accept and resolve;
the sweepers' claims and the outbox relay. A pymongo command listener records every command
sent meanwhile, and each distinct query shape is explained on the server.

SecantusDB's planner uses an index only when one index serves *every* field of the filter (or
the filter is ``_id`` alone); MongoDB's planner uses an index whenever one constrains the index's
leading field, checking the other fields on the fetched document, and builds a collection scan
only when no index applies. So each shape must either be an index scan on SecantusDB, or — the
SecantusDB gap, listed in docs/mongodb.md — constrain the leading field of an index that exists on
the server (equality, $in or a range; the CAS's ``{_id, version}`` is such a shape: IXSCAN on
``_id_`` with ``version`` checked on the document in MongoDB).

SecantusDB's ``explain`` of ``update`` and ``delete`` reports a collection scan whatever the filter
(not implemented); its write path chooses candidates with the same index picker as ``find``, so the
filter of every command is explained as a ``find``.
"""
from __future__ import annotations

import json
import threading

import pytest
from pymongo import monitoring

from services.dispatch.cases import case_id_for
from shared.cli import _load_demo
from shared.runtime import SERVICES, Runtime
from tests.support.runtime import make_settings, token
from tests.support.dispatch import ADDRESS, TOWNSHIP, api, holder, posts

QUERY_COMMANDS = {"find": "filter", "findAndModify": "query", "count": "query", "delete": None, "update": None,
                  "aggregate": None}
INDEXABLE_OPS = {"$in", "$lt", "$lte", "$gt", "$gte", "$eq"}


class Recorder(monitoring.CommandListener):
    def __init__(self):
        self.on = False
        self.lock = threading.Lock()
        self.commands: list[tuple[str, dict]] = []

    def started(self, event):
        if self.on and event.command_name in QUERY_COMMANDS:
            with self.lock:
                self.commands.append((event.database_name, dict(event.command)))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


RECORDER = Recorder()
monitoring.register(RECORDER)  # global: applies to the clients the runtime creates below


def filters_of(command: dict) -> list[tuple[str, dict, dict | None]]:
    """(collection, filter, sort) for each query inside one command."""
    name = next(iter(command))
    coll = command[name]
    if name == "update":
        return [(coll, u.get("q") or {}, None) for u in command.get("updates", [])]
    if name == "delete":
        return [(coll, d.get("q") or {}, None) for d in command.get("deletes", [])]
    if name == "aggregate":
        first = (command.get("pipeline") or [{}])[0]
        return [(coll, first.get("$match", {}), None)]
    return [(coll, command.get(QUERY_COMMANDS[name]) or {}, command.get("sort"))]


def shape(value):
    if isinstance(value, dict):
        return {k: shape(v) if k.startswith("$") and isinstance(v, dict) else
                (shape(v) if isinstance(v, dict) else "?") for k, v in value.items()}
    return "?"


def implies_partial(filter_: dict, partial: dict) -> bool:
    """The adapter's partial filters are ``{field: {$gte: ""}}``: implied by a string equality."""
    return all(isinstance(filter_.get(f), str) and set(cond) == {"$gte"} and cond["$gte"] == ""
               for f, cond in partial.items())


def leading_field_served(filter_: dict, indexes: list[dict]) -> str | None:
    for ix in indexes:
        if "partialFilterExpression" in ix and not implies_partial(filter_, ix["partialFilterExpression"]):
            continue
        lead = next(iter(ix["key"]))
        cond = filter_.get(lead, "absent")
        if cond == "absent":
            continue
        if not isinstance(cond, dict) or (set(cond) & INDEXABLE_OPS):
            return ix["name"]
    return None


def plan_stages(plan: dict) -> list[str]:
    stages = []
    while plan:
        stages.append(plan["stage"])
        plan = plan.get("inputStage")
    return stages


@pytest.fixture(scope="module")
def own_mongo_url():
    """A SecantusDB server of this module's own: late in the full suite the session's server, after
    hundreds of tests (processes killed mid-write among them), answered the relay and sweepers so
    slowly on a slow host that a drain ran out (each thread waited in find_one_and_update); this
    test is about query plans, not about that server's age. A real MongoDB when SANZHANG_MONGO_URL is set."""
    from tests.support.mongo_server import serving

    yield from serving()


@pytest.fixture
def wire_system(tmp_path, clock, own_mongo_url):
    mongo_url = own_mongo_url
    settings = make_settings(tmp_path, mongo_url=mongo_url)
    runtime = Runtime(settings, SERVICES, clock=clock).start()
    yield runtime
    runtime.stop()
    from pymongo import MongoClient

    client = MongoClient(mongo_url)
    for service in SERVICES:
        client.drop_database(f"{settings.namespace}_{service}")
    client.close()


def assert_drained(system, timeout: float = 60) -> None:
    """The system settles; if not, every thread's stack says where it stands. In the full suite on a
    slow host a drain of 30 s ran out after the first report, where alone it takes 1–2 s: the wait
    is longer, and a failure now shows what every thread was doing."""
    if system.drain(timeout=timeout):
        return
    import sys
    import traceback

    names = {t.ident: t.name for t in threading.enumerate()}
    stacks = "\n".join(f"--- {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame))
                       for ident, frame in sys._current_frames().items())
    busy = [(w.service, w.in_flight) for w in system.workers]
    raise AssertionError(f"not drained in {timeout} s; workers in flight {busy}, relay moving "
                         f"{system.relay.moving()}, bus pending {system._queued()}\n{stacks}")


def run_hot_paths(system) -> None:
    from shared.web import create_app

    app = create_app(system)
    app.testing = True
    web = app.test_client()
    _load_demo(system)
    neighbourhood = posts(system)["neighbourhood"]
    lead = holder(system, neighbourhood)
    resident = token(system, "client")
    RECORDER.on = True
    for i in range(3):
        body = {"township": TOWNSHIP, "address": ADDRESS, "category": "environment", "channel": "mini_program",
                "description": f"第{i}件：门口路灯坏了一个星期", "reporter_phone": "13800000001"}
        created = web.post("/api/v1/reports", json=body, headers={**resident, "Idempotency-Key": f"k{i}"})
        assert created.status_code == 201, created.json
        assert_drained(system)
        assert web.get(f"/api/v1/reports/{created.json['tracking_no']}", headers=resident).json["status"] == "assigned"
        case_id = case_id_for(created.json["id"])
        inbox = web.get("/api/v1/my/cases", headers=lead)
        assert inbox.status_code == 200 and case_id in {c["id"] for c in inbox.json}
        assert web.post(f"/api/v1/cases/{case_id}/accept", json={}, headers=lead).status_code == 200
        assert web.post(f"/api/v1/cases/{case_id}/resolve", json={"note": "已修好"}, headers=lead).status_code == 200
        assert_drained(system)
    assert web.get(f"/api/v1/deliveries?township={TOWNSHIP}", headers=token(system, "staff")).status_code == 200
    api(system)["sweeper"].run_once()
    # The figures' first build runs once in the background after start-up, so whether its reads
    # fall inside the recording depended on timing: run it here so its shapes are always checked.
    assert api(system)["supervision"].rollups.rebuild() > 0
    RECORDER.on = False


def test_every_hot_path_query_is_served_by_an_index(wire_system):
    from pymongo import MongoClient

    RECORDER.commands.clear()
    run_hot_paths(wire_system)
    client = MongoClient(wire_system.settings.mongo_url)
    seen: dict[str, dict] = {}
    for db_name, command in RECORDER.commands:
        for coll, filter_, sort in filters_of(command):
            key = json.dumps([db_name.split("_", 1)[1], coll, next(iter(command)), shape(filter_), shape(sort or {})],
                             sort_keys=True)
            if key in seen:
                continue
            explain = {"find": coll, "filter": filter_, **({"sort": sort} if sort else {})}
            plan = client[db_name].command("explain", explain, verbosity="queryPlanner")
            stages = plan_stages(plan["queryPlanner"]["winningPlan"])
            seen[key] = {"stages": stages, "filter": filter_,
                         "leading": leading_field_served(filter_, list(client[db_name][coll].list_indexes()))}
    assert len(seen) >= 10, "the hot paths sent fewer query shapes than expected: the recording failed"
    ixscan = {k: v for k, v in seen.items() if "IXSCAN" in v["stages"]}
    gap = {k: v for k, v in seen.items() if "IXSCAN" not in v["stages"]}
    unindexed = {k: v for k, v in gap.items() if not v["leading"]}
    print(f"\n{len(seen)} query shapes: {len(ixscan)} IXSCAN on SecantusDB, {len(gap)} served by an index's "
          "leading field (SecantusDB's planner gap):")
    for k, v in sorted(gap.items()):
        print("  ", k, "→", v["leading"])
    assert not unindexed, "queries no index can serve:\n" + "\n".join(unindexed)

    def on_secantus(service: str, coll: str, command: str, fields: set[str]) -> list[list[str]]:
        return [v["stages"] for k, v in seen.items() if json.loads(k)[:3] == [service, coll, command]
                and set(v["filter"]) == fields]
    # The hottest ones are index scans on SecantusDB itself, not only in principle.
    assert ["FETCH", "IXSCAN"] in on_secantus("intake", "reports", "find", {"_id"})          # get by id
    assert ["FETCH", "IXSCAN"] in on_secantus("intake", "reports", "find", {"tracking_no"})  # resident's view
    assert ["FETCH", "IXSCAN"] in on_secantus("intake", "reports", "find", {"idempotency_key"})
    for service, coll in (("intake", "reports"), ("dispatch", "cases")):                      # outbox claims
        assert ["FETCH", "IXSCAN"] in on_secantus(service, coll, "findAndModify", {"outbox_due"})
    assert on_secantus("dispatch", "cases", "findAndModify", {"timer_due"}) == [["FETCH", "IXSCAN"]]  # sweeper
    client.close()
