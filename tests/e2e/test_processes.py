"""The same code as four separate processes over the real RabbitMQ (the distributed mode)."""
from __future__ import annotations


import pytest

from services.dispatch.demo_roster import demo_roster_csv
from shared.domain.demo import DEMO_TOWNSHIP
from shared.auth import Principal, TokenIssuer
from shared.domain.phones import FULL_NUMBER
from tests.support.cluster import SERVICES, Cluster, call, wait_until
from tests.support.runtime import ADMIN, SECRET

@pytest.fixture(params=["sqlite", "mongodb"])
def cluster(request, amqp_url, tmp_path):
    # "mongodb": every service stores through pymongo over a socket, in SecantusDB (or the real
    # MongoDB of SANZHANG_MONGO_URL); "sqlite": a file per service under tmp_path.
    mongo = request.getfixturevalue("mongo_url") if request.param == "mongodb" else None
    c = Cluster(amqp_url, tmp_path, mongo_url=mongo).start_all()
    try:
        yield c.base, tmp_path
    finally:
        c.stop_all()


def test_report_flows_through_four_processes_over_rabbitmq(cluster):
    base, tmp_path = cluster
    admin = {"Authorization": f"Bearer {ADMIN}"}
    issuer = TokenIssuer(SECRET)
    client = {"Authorization": "Bearer " + issuer.issue(Principal(role="client", townships=(DEMO_TOWNSHIP,)))}
    staff = {"Authorization": "Bearer " + issuer.issue(Principal(role="staff", townships=(DEMO_TOWNSHIP,)))}

    status, _ = call("POST", base["dispatch"] + "/api/v1/admin/townships",
                     {"code": DEMO_TOWNSHIP, "name": "清溪镇"}, admin)
    assert status == 201
    status, imported = call("POST", base["dispatch"] + f"/api/v1/townships/{DEMO_TOWNSHIP}/roster?filename=demo.csv",
                            raw=demo_roster_csv(), headers={**admin, "Content-Type": "text/csv"})
    assert status == 201, imported
    status, tree = call("GET", base["dispatch"] + f"/api/v1/townships/{DEMO_TOWNSHIP}/org", headers=staff)
    staffed = [u for u in tree if u["level"] == "neighbourhood" and u["lead_name"]]
    target = staffed[0]

    # The household's address, read through the org API's neighbourhood: pick any household of it.
    from services.dispatch.roster import import_roster
    org = import_roster(DEMO_TOWNSHIP, demo_roster_csv(), "demo.csv")
    address = next(h.address for h in org.households if h.neighbourhood_id == target["id"])

    reports = []
    for i in range(20):
        status, created = call("POST", base["intake"] + "/api/v1/reports",
                               {"township": DEMO_TOWNSHIP, "address": address, "category": "environment",
                                "description": f"第{i}号：垃圾桶满了没人清运", "reporter_phone": "13800000002",
                                "channel": "wechat"}, client)
        assert status == 201, created
        reports.append(created)

    def all_assigned():
        views = [call("GET", base["intake"] + f"/api/v1/reports/{r['id']}", headers=client)[1] for r in reports]
        return views if all(v["status"] == "assigned" for v in views) else None

    views = wait_until(all_assigned, what="every report assigned")
    assert {v["handler"]["name"] for v in views} == {target["lead_name"]}
    assert {v["level"] for v in views} == {"neighbourhood"}

    def notified():
        _, log = call("GET", base["notify"] + f"/api/v1/deliveries?township={DEMO_TOWNSHIP}&limit=200", headers=staff)
        return log if len(log) >= 20 else None

    log = wait_until(notified, what="20 notifications")
    assert len(log) == 20  # exactly one per report
    assert {d["recipient_name"] for d in log} == {target["lead_name"]}
    assert all("待您接单" in d["text"] for d in log)

    status, spec = call("GET", base["intake"] + "/openapi.json")
    assert "/api/v1/reports" in spec["paths"] and "/api/v1/deliveries" not in spec["paths"]

    # Nothing printed a full phone number, in any process.
    import re
    for name in SERVICES:
        text = (tmp_path / f"{name}.log").read_text(errors="replace")
        assert not FULL_NUMBER.search(text), name
