"""Faults injected for real, under load, over the real RabbitMQ: processes killed and terminated
mid-load, the broker restarted. Each ends with a count: every report has exactly one case, every
case exactly one assignment notification, no event left in any outbox — 0 lost, 0 doubled."""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.dispatch.demo_roster import DEMO_TOWNSHIP, demo_roster_csv
from services.dispatch.roster import import_roster
from shared.auth import Principal, TokenIssuer
from tests.cluster import Cluster, call, wait_until
from tests.conftest import ADMIN, SECRET

LOAD = 1000


def seed(cluster: Cluster) -> tuple[dict, list[str]]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert call("POST", cluster.base["dispatch"] + "/api/v1/admin/townships",
                {"code": DEMO_TOWNSHIP, "name": "清溪镇"}, admin)[0] == 201
    status, body = call("POST", cluster.base["dispatch"] + f"/api/v1/townships/{DEMO_TOWNSHIP}/roster?filename=d.csv",
                        raw=demo_roster_csv(), headers={**admin, "Content-Type": "text/csv"})
    assert status == 201, body
    org = import_roster(DEMO_TOWNSHIP, demo_roster_csv(), "d.csv")
    client = {"Authorization": "Bearer " + TokenIssuer(SECRET).issue(Principal(role="client", townships=(DEMO_TOWNSHIP,)))}
    return client, [h.address for h in org.households]


def submit_load(cluster: Cluster, client: dict, addresses: list[str], n: int, accepted: list) -> None:
    def one(i):
        body = {"township": DEMO_TOWNSHIP, "address": addresses[i % len(addresses)], "category": "environment",
                "description": f"第{i}件：路边垃圾堆积", "reporter_phone": "13800000003", "channel": "wechat"}
        for _ in range(50):  # intake itself may be the one restarted: the client retries, as apps do
            try:
                status, created = call("POST", cluster.base["intake"] + "/api/v1/reports", body, client, timeout=10)
            except OSError:
                time.sleep(0.2)
                continue
            if status == 201:
                accepted.append(created["id"])
                return
            time.sleep(0.2)
        raise AssertionError(f"report {i} never accepted")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(n)))


def final_count(cluster: Cluster, accepted: list[str]) -> None:
    from shared.storage import Index

    reports = cluster.store("intake").collection("reports", [Index.on("outbox_due"), Index.on("township")])
    cases = cluster.store("dispatch").collection("cases", [Index.on("report_id", unique=True), Index.on("outbox_due"),
                                                          Index.on("township")])
    deliveries = cluster.store("notify").collection("deliveries", [Index.on("township"), Index.on("case_id")])

    def settled():
        return (cases.count({"township": DEMO_TOWNSHIP}) >= len(accepted)
                and len([d for d in deliveries.find({"township": DEMO_TOWNSHIP}) if d["event_type"] == "case.assigned"
                         and d["status"] in ("sent", "delivered")]) >= len(accepted))

    wait_until(settled, timeout=120, what="every report to have a case and a notification", interval=1)
    time.sleep(2)  # anything doubled would arrive now
    assert reports.count({"township": DEMO_TOWNSHIP}) == len(accepted) == len(set(accepted))
    all_cases = cases.find({"township": DEMO_TOWNSHIP})
    assert len(all_cases) == len(accepted), "a report without exactly one case"
    assert {c["report_id"] for c in all_cases} == set(accepted)
    per_case: dict[str, int] = {}
    for d in deliveries.find({"township": DEMO_TOWNSHIP}):
        if d["event_type"] == "case.assigned":
            per_case[d["case_id"]] = per_case.get(d["case_id"], 0) + 1
    assert set(per_case) == {c["_id"] for c in all_cases}
    assert set(per_case.values()) == {1}, "a case notified more than once"
    assert reports.count({"outbox_due": {"$ne": None}}) == 0, "events left unpublished in intake"
    assert cases.count({"outbox_due": {"$ne": None}}) == 0, "events left unpublished in dispatch"


def run_with_fault(amqp_url, tmp_path, fault, after=None) -> None:
    cluster = Cluster(amqp_url, tmp_path).start_all()
    try:
        client, addresses = seed(cluster)
        accepted: list[str] = []
        loader = threading.Thread(target=submit_load, args=(cluster, client, addresses, LOAD, accepted))
        loader.start()
        wait_until(lambda: len(accepted) >= LOAD // 4, timeout=60, what="load under way", interval=0.05)
        fault(cluster)
        loader.join(timeout=300)
        assert len(accepted) == LOAD
        final_count(cluster, accepted)
        if after:
            after(cluster)
    finally:
        cluster.stop_all()


def kill_and_restart(service: str, sig):
    def fault(cluster: Cluster):
        cluster.stop(service, sig=sig)
        time.sleep(1)
        cluster.start(service)
    return fault


@pytest.mark.parametrize("service,sig", [
    ("dispatch", signal.SIGKILL), ("dispatch", signal.SIGTERM),
    ("notify", signal.SIGKILL), ("intake", signal.SIGTERM),
], ids=["dispatch-kill", "dispatch-term", "notify-kill", "intake-term"])
def test_process_killed_mid_load_loses_and_doubles_nothing(amqp_url, tmp_path, service, sig):
    run_with_fault(amqp_url, tmp_path, kill_and_restart(service, sig))


def rabbitmq_restart(cluster: Cluster):
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "await_startup"], check=False, capture_output=True, timeout=120)


def test_broker_restart_mid_load_is_survived_without_restarting_any_process(amqp_url, tmp_path):
    pids = {}

    def fault(cluster: Cluster):
        pids.update({n: p.pid for n, p in cluster.procs.items()})
        rabbitmq_restart(cluster)

    def same_processes(cluster: Cluster):
        assert {n: p.pid for n, p in cluster.procs.items()} == pids
        assert all(p.poll() is None for p in cluster.procs.values())

    run_with_fault(amqp_url, tmp_path, fault, after=same_processes)
