"""Shared set-up for the escalation tests (no tests here): a city, its departments, the matrix, credentials."""
from __future__ import annotations

from datetime import datetime, timezone

from shared.events import load_event, make_event
from tests.support.runtime import ADMIN_HEADERS

CITY = "430382"
TOWNSHIP = "430382100"          # the demo township (清溪镇)
NEIGHBOUR = "430382101"         # another township of the same city
FOREIGN = "430521100"           # a township of another city

DEPARTMENTS = {
    "zjj": ("韶山市住房和城乡建设局", True),
    "jtj": ("韶山市交通运输局", False),
    "zrzy": ("韶山市自然资源局", False),
    "mzj": ("韶山市民政局", False),
    "dx": ("中国电信韶山分公司", False),
    "cg": ("韶山市城市管理和综合执法局", False),
}
MATRIX_CSV = "\n".join([
    "类别,镇(街道)代码,牵头部门,配合部门,备注",
    "住房物业,,韶山市住房和城乡建设局,中国电信韶山分公司、韶山市民政局,老旧小区改造",
    "road,,430382-jtj,,",
    f"road,{NEIGHBOUR},韶山市城市管理和综合执法局,,镇区道路由城管负责",
    "environment,,430382-cg,韶山市自然资源局,",
    *[f"{c},,430382-cg,," for c in ("water", "power", "dispute", "hazard", "policy", "social", "other")],
]) + "\n"


def dept_id(short: str) -> str:
    return f"{CITY}-{short}"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def setup_city(web, *, matrix: bool = True, sla: dict | None = None) -> dict[str, dict]:
    """Registers the city, its departments and (by default) the matrix; returns each department's
    credential headers, keyed by short name."""
    body = {"name": "韶山市", "supervisor": {"name": "王督办", "phone": "13900000009", "wecom_id": "wangdb"}}
    if sla:
        body["sla"] = sla
    resp = web.put(f"/api/v1/cities/{CITY}", json=body, headers=ADMIN_HEADERS)
    assert resp.status_code == 200, resp.json
    headers = {}
    for short, (name, sees_phone) in DEPARTMENTS.items():
        resp = web.post(f"/api/v1/cities/{CITY}/departments",
                        json={"id": dept_id(short), "name": name, "sees_phone": sees_phone,
                              "contact": {"name": f"{name[:2]}联络员", "phone": "13800000100"}},
                        headers=ADMIN_HEADERS)
        assert resp.status_code == 201, resp.json
        resp = web.post(f"/api/v1/departments/{dept_id(short)}/credentials", json={"label": "业务系统"},
                        headers=ADMIN_HEADERS)
        assert resp.status_code == 201, resp.json
        headers[short] = bearer(resp.json["token"])
    if matrix:
        resp = web.post(f"/api/v1/cities/{CITY}/matrix/import?filename=matrix.csv", data=MATRIX_CSV.encode("utf-8"),
                        headers=ADMIN_HEADERS)
        assert resp.status_code == 200, resp.json
        assert resp.json["missing"] == []
    return headers


def referred_event(case_id: str, *, category: str = "housing", township: str = TOWNSHIP, at: datetime | None = None,
                   report_id: str | None = None) -> dict:
    """A case.referred as dispatch publishes it (services.dispatch.transitions.refer)."""
    report_id = report_id or "r" + case_id[1:]
    payload = {"case_id": case_id, "report_id": report_id, "tracking_no": "K7M2P9QX", "category": category,
               "tier": "difficult", "status": "referred",
               "assignee": {"level": "department", "unit_id": None, "unit_name": "市直部门"},
               "previous": {"level": "township", "unit_id": f"t-{township}", "unit_name": "清溪镇",
                            "lead_name": "镇(街道)工作人员"},
               "reason": "需要部门协调解决", "note": "涉及多个部门", "actor": "清溪镇工作人员",
               "promise_due": "2026-11-09T01:00:00.000000Z", "summary": "老旧小区3栋屋顶漏水"}
    return make_event("case.referred", township, payload,
                      at=at or datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc), correlation_id=report_id)


def report_event(report_id: str, *, township: str = TOWNSHIP, phone: str = "13812345678") -> dict:
    payload = {"report_id": report_id, "tracking_no": "K7M2P9QX", "category": "housing", "tier": None,
               "description": "3栋屋顶漏水，雨天家里到处是水", "channel": "mini_program", "address": "韶山村一组3栋",
               "reporter_phone": phone, "reporter_name": "张大爷", "submitted_at": "2026-10-20T01:00:00.000000Z"}
    # As the consumer hands it over: through load_event, which opens the sealed phone number.
    return delivered("report.submitted", township, payload,
                      at=datetime(2026, 10, 20, 1, 0, tzinfo=timezone.utc), correlation_id=report_id)



def delivered(type_: str, township: str, payload: dict, **kw) -> dict:
    """An event as a handler receives it from the bus (serialised, then loaded)."""
    import json

    return load_event(json.loads(json.dumps(make_event(type_, township, payload, **kw))))


def referred_case(system, web, demo, category: str = "housing",
                  description: str = "3栋屋顶漏水，雨天家里到处是水", phone: str = "13812345678") -> str:
    """A resident's report through intake, referred up by the township's staff (for housing: 住建局
    leads, 电信 and 民政局 co-handle); returns the case id once every service has it."""
    from services.dispatch import transitions
    from shared.domain.ids import case_id_for
    from tests.support.runtime import token

    resp = web.post("/api/v1/reports", headers=token(system, "client"), json={
        "township": TOWNSHIP, "category": category, "description": description,
        "reporter_phone": phone, "channel": "mini_program", "address": demo["address"]})
    assert resp.status_code == 201, resp.json
    assert system.drain()
    case_id = case_id_for(resp.json["id"])
    system.service("dispatch").api["cases"].mutate(
        case_id, lambda c: transitions.refer(c, system.clock.now(), reason="需要部门协调解决",
                                             actor=transitions.Actor("清溪镇李干事", "staff")))
    assert system.drain()
    return case_id


def record_published(system) -> list[dict]:
    """Every event the runtime's relay publishes from now on, once each, as consumers load them (so
    sealed contact fields are opened again), in order of first publication.

    Once each, by id, as the consumers take them: publishing is at-least-once. A document whose
    outbox is being published (claimed under a lease) and that gains a new event meanwhile is due
    again at once, so a second relay sweep — drain()'s flush beside the relay's thread — may publish
    the in-flight event as well (shared/messaging/relay.py; the consumers drop the second copy)."""
    import json
    import threading

    published: list[dict] = []
    seen: set[str] = set()
    lock = threading.Lock()   # the relay's thread and drain()'s flush may both be here
    publisher = system.relay.publisher
    original = publisher.publish

    def recording(events):
        original(events)
        with lock:
            for e in events:
                if e["id"] not in seen:
                    seen.add(e["id"])
                    published.append(load_event(json.loads(json.dumps(e))))

    publisher.publish = recording
    return published

