"""Shared helpers for the dispatch tests (no tests here): the demo org's posts, opening cases
through the real intake → dispatch path, and driving the SLA sweeper by hand."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

from shared.cli import _load_demo
from shared.domain.ids import case_id_for
from tests.support.runtime import make_settings, token

TOWNSHIP = "430382100"
SH = ZoneInfo("Asia/Shanghai")
# 韶山村 / 一片 / 一组 / 第1邻 in the demo roster: every post above it is filled.
PATH = ("韶山村", "一片", "一组", "第1邻")
ADDRESS = "韶山村一组12号"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def api(system) -> dict:
    return system.service("dispatch").api


def demo_township(system) -> dict:
    """The demo township, with the background sweeper stopped so each test fires timers itself
    (the `demo` fixture of tests/conftest.py)."""
    api(system)["sweeper"].stop()
    return _load_demo(system)


def posts(system) -> dict[str, dict]:
    """level → unit on the demo path 韶山村/一片/一组/第1邻, plus the township."""
    units = api(system)["org"].tree(TOWNSHIP)
    found, parent = {}, None
    for level, name in zip(("village", "area", "group", "neighbourhood"), PATH):
        unit = next(u for u in units if u["level"] == level and u["name"] == name
                    and (parent is None or u["parent_id"] == parent))
        found[level] = unit
        parent = unit["_id"]
    found["township"] = next(u for u in units if u["level"] == "township")
    return found


def holder(system, unit: dict, township: str = TOWNSHIP) -> dict:
    """Headers of whoever holds ``unit``: its lead, or the township's staff."""
    if unit["level"] == "township":
        return token(system, "staff", townships=(township,), name="镇综治中心")
    name = (unit.get("lead") or {}).get("name") or unit["name"]
    return token(system, "lead", townships=(township,), unit_id=unit["_id"], name=name)


def submit(system, web, *, address: str = ADDRESS, category: str = "environment", **extra) -> str:
    """A resident's report through intake; returns the case id once dispatch has opened it."""
    body = {"township": TOWNSHIP, "address": address, "category": category,
            "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": "13800000001",
            "channel": "mini_program", **extra}
    resp = web.post("/api/v1/reports", json=body, headers=token(system, "client"))
    assert resp.status_code == 201, resp.json
    assert system.drain()
    case_id = case_id_for(resp.json["id"])
    assert api(system)["cases"].get(case_id) is not None
    return case_id


def case(system, case_id: str) -> dict:
    return api(system)["cases"].get(case_id)


def sweep(system) -> int:
    return api(system)["sweeper"].run_once()


def kinds(doc: dict) -> list[str]:
    return [e["type"] for e in doc["timeline"]]


def outbox_types(doc: dict) -> list[str]:
    return [e["type"] for e in doc.get("outbox", [])]


def referral_reason(system, case_id: str) -> str | None:
    """The reason the escalation service recorded for a referred case (None: not recorded yet)."""
    doc = system.service("escalation").api["referrals"].collection.get(case_id)
    if doc is None:
        return None
    return (doc.get("referral") or doc).get("reason")


@contextmanager
def pages_opened(tmp_path, clock):
    """The whole system with the demo township's resident pages opened (代办 is one of them), its
    roster loaded and its first events handled."""
    from shared.runtime import SERVICES, Runtime

    runtime = Runtime(make_settings(tmp_path, pages_townships=f"{TOWNSHIP}=清溪镇"), SERVICES, clock=clock).start()
    try:
        demo_township(runtime)
        assert runtime.drain(15)
        yield runtime
    finally:
        runtime.stop()
