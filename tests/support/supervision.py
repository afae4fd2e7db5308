"""A small hand-computed supervision dataset and helpers, shared by the figures, cards and board tests (no tests
here)."""
from __future__ import annotations

from datetime import timedelta


from shared.clock import iso
from shared.domain.ids import new_id
from tests.support.dispatch import TOWNSHIP, api, case, holder, posts, submit, sweep
from tests.support.runtime import token


YINTIAN = "银田村一组1号"  # 银田村/一片/一组/第1邻 (胡秀兰), group lead 文建平


def sup(system):
    return api(system)["supervision"]


def act(web, system, case_id, action, unit, **body):
    resp = web.post(f"/api/v1/cases/{case_id}/{action}", json=body, headers=holder(system, unit))
    assert resp.status_code == 200, resp.json
    return resp.json


def rated(system, case_id, score, comment=None):
    """A report.rated event as intake emits it (the resident loop's producer), handed to dispatch."""
    doc = case(system, case_id)
    event = {"id": new_id(), "type": "report.rated", "township": TOWNSHIP, "occurred_at": iso(system.clock.now()),
             "version": 1, "correlation_id": doc["report_id"],
             "payload": {"report_id": doc["report_id"], "score": score, "comment": comment}}
    sup(system).projector.on_rated(event)
    return event


def unit_named(system, level, name, lead):
    return next(u for u in api(system)["org"].tree(TOWNSHIP)
                if u["level"] == level and u["name"] == name and (u.get("lead") or {}).get("name") == lead)


def build_dataset(system, web, clock) -> dict:
    """The `dataset` fixture of tests/conftest.py, on the demo township.

    t0 = Monday 2026-11-02 09:00 (Beijing). A, B, D at 韶山村一组第1邻 (周桂香); C at 银田村一组第1邻;
    E unlocated (the township holds it)."""
    for s in sup(system).sweepers:
        s.stop()
    p = posts(system)
    yintian_group = unit_named(system, "group", "一组", lead="文建平")
    t0 = clock.now()
    ids = {
        "A": submit(system, web, category="environment"),
        "B": submit(system, web, category="dispute"),
        "C": submit(system, web, address=YINTIAN, category="hazard"),
        "D": submit(system, web, category="environment"),
        "E": submit(system, web, address="不存在的地址99号", reporter_phone="13999999999", category="other"),
    }
    hood, group = p["neighbourhood"], p["group"]
    clock.set(t0 + timedelta(minutes=30))
    act(web, system, ids["A"], "accept", hood)
    act(web, system, ids["B"], "accept", hood)
    act(web, system, ids["D"], "escalate", hood, reason="beyond_ability")
    clock.set(t0 + timedelta(minutes=60))
    act(web, system, ids["A"], "resolve", hood, note="已更换灯泡")
    act(web, system, ids["B"], "resolve", hood, note="双方达成一致")
    act(web, system, ids["D"], "accept", group)
    clock.set(t0 + timedelta(minutes=90))
    act(web, system, ids["D"], "resolve", group, note="已清理")
    assert sweep(system) == 1  # C: warned
    clock.set(t0 + timedelta(hours=2))
    assert sweep(system) == 1  # C: acceptance breached at 邻 → 银田村一组
    assert case(system, ids["C"])["unit_id"] == yintian_group["_id"]
    clock.set(t0 + timedelta(hours=3))
    act(web, system, ids["C"], "accept", yintian_group)
    staff = token(system, "staff", name="镇综治中心")
    assert web.post(f"/api/v1/cases/{ids['C']}/supervise", json={"note": "请尽快处理"}, headers=staff).status_code == 200
    assert system.drain()
    events = {"A": rated(system, ids["A"], 5), "B": rated(system, ids["B"], 2, "调解结果不公平"),
              "D": rated(system, ids["D"], 4)}
    clock.set(t0 + timedelta(hours=9))
    return {"ids": ids, "t0": t0, "posts": p, "yintian_group": yintian_group, "rated": events}
