"""Dispatch's service layer, composed as in production (services/dispatch/bootstrap.py) but on the in-memory
store fake and a FakeClock, nothing started: a report becomes a case with the neighbourhood's lead, a vacant
post is passed, an unplaceable report goes to the township, a redelivery opens nothing twice, and the SLA
timers climb the chain when the clock passes a deadline. The same flows through the embedded runtime are in
tests/system/test_slice.py and tests/system/test_dispatch_timers.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.dispatch.bootstrap import build
from services.dispatch.cases import case_id_for
from services.dispatch.demo_roster import DEMO_TOWNSHIP, DEMO_TOWNSHIP_NAME, demo_roster_csv
from services.dispatch.org import township_unit_id
from shared.clock import FakeClock
from shared.events import load_event, make_event
from shared.service import Context
from tests.support.fakes.memory_store import MemoryStore
from tests.support.runtime import make_settings

ADDRESS = "韶山村一组12号"  # 韶山村/一片/一组/第1邻, 邻长 周桂香
MONDAY_9AM = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)


class Dispatch:
    """The dispatch service's parts on fakes; `wakes` counts the relay wake-ups its writes ask for."""

    def __init__(self, tmp_path):
        self.clock = FakeClock(MONDAY_9AM)
        self.store = MemoryStore()
        self.wakes = 0
        ctx = Context(settings=make_settings(tmp_path), clock=self.clock, store=self.store, waker=self._wake)
        self.parts = build(ctx)
        self.api = self.parts.api
        self.org = self.api["org"]
        self.org.ensure_township(DEMO_TOWNSHIP, DEMO_TOWNSHIP_NAME, DEMO_TOWNSHIP[:6])
        self.org.import_roster(DEMO_TOWNSHIP, demo_roster_csv(), "demo.csv", actor="test")

    def _wake(self) -> None:
        self.wakes += 1

    def submit(self, report_id: str = "r" * 32, address: str = ADDRESS, category: str = "environment") -> dict:
        payload = {"report_id": report_id, "tracking_no": "7KQ4M2XC", "category": category, "tier": None,
                   "description": "门口路灯坏了一个星期", "channel": "phone", "address": address,
                   "submitted_at": "2026-11-02T01:00:00.000000Z"}
        event = load_event(make_event("report.submitted", DEMO_TOWNSHIP, payload, at=self.clock.now(),
                                      correlation_id=report_id))
        self.parts.handlers["report.submitted"](event)
        return self.case(report_id)

    def case(self, report_id: str = "r" * 32) -> dict:
        return self.api["cases"].get(case_id_for(report_id))

    def unit(self, level: str, name: str) -> dict:
        return next(u for u in self.org.tree(DEMO_TOWNSHIP) if u["level"] == level and u["name"] == name)


@pytest.fixture
def dispatch(tmp_path):
    return Dispatch(tmp_path)


def outbox_types(case: dict) -> list[str]:
    return [e["type"] for e in case.get("outbox", [])]


def test_a_report_at_a_known_address_goes_to_its_neighbourhoods_lead(dispatch):
    case = dispatch.submit()
    assert case["status"] == "assigned" and case["level"] == "neighbourhood" and case["located"]
    assert case["assignee"]["unit_name"] == "第1邻" and case["assignee"]["lead_name"] == "周桂香"
    assert "case.assigned" in outbox_types(case) and dispatch.wakes >= 1


def test_a_new_case_is_projected_and_linked_as_it_opens_not_by_its_own_case_assigned(dispatch):
    """Issue 16: dispatch does not consume its own case.assigned; the case's stint row and its short
    link are written with the case, and a redelivered report writes them again if they are missing."""
    from services.dispatch.bootstrap import HANDLES
    from shared.domain.links import link_code

    assert "case.assigned" not in HANDLES and dispatch.parts.retired == {"case.assigned"}
    case = dispatch.submit()
    stints = dispatch.api["supervision"].stints
    links = dispatch.api["people"].links.links
    code = link_code(dispatch.parts.api["people"].links.secret, case["_id"])
    assert [s["_id"] for s in stints.find({"case_id": case["_id"]})] == [f"{case['_id']}:1"]
    assert links.get(code)["case_id"] == case["_id"]
    stints.delete(f"{case['_id']}:1")   # as if a store without transactions lost them in a crash
    links.delete(code)
    dispatch.submit()
    assert stints.count({"case_id": case["_id"]}) == 1 and links.get(code) is not None


def test_a_case_assigned_from_an_older_version_still_projects_and_links_its_case(dispatch):
    """A rolling upgrade: a process of the version before issue 16 opened the case (no stints, no link
    written with it) and its case.assigned arrives over the binding that version declared: handled,
    not acked unread; twice is harmless."""
    from shared.domain.links import link_code

    case = dispatch.submit()
    stints = dispatch.api["supervision"].stints
    links = dispatch.api["people"].links.links
    code = link_code(dispatch.parts.api["people"].links.secret, case["_id"])
    stints.delete(f"{case['_id']}:1")
    links.delete(code)
    [assigned] = [e for e in case["outbox"] if e["type"] == "case.assigned"]
    for _ in range(2):
        dispatch.parts.handlers["case.assigned"](load_event(assigned))
    assert stints.count({"case_id": case["_id"]}) == 1 and links.get(code)["case_id"] == case["_id"]


def test_a_redelivered_report_opens_nothing_twice(dispatch):
    first = dispatch.submit()
    again = dispatch.submit()
    assert again["_id"] == first["_id"] and again["version"] == first["version"]
    assert dispatch.api["cases"].collection.count({"township": DEMO_TOWNSHIP}) == 1


def test_an_address_nobody_knows_goes_to_the_township(dispatch):
    case = dispatch.submit(address="不存在的地址99号")
    assert case["level"] == "township" and case["unit_id"] == township_unit_id(DEMO_TOWNSHIP)
    assert not case["located"] and "未能根据住户、地址或电话定位到邻" in case["timeline"][-1]["reason"]


def test_a_vacant_neighbourhood_post_is_passed_to_the_group_and_named(dispatch):
    hood = dispatch.unit("neighbourhood", "第1邻")
    dispatch.org.vacate(hood["_id"], actor="test", reason="红牌")
    case = dispatch.submit()
    assert case["level"] == "group" and case["located"]
    assert "邻“第1邻”岗位空缺" in case["timeline"][-1]["reason"]


def test_a_missed_acceptance_climbs_to_the_group_with_the_breach_recorded(dispatch):
    case = dispatch.submit()
    sweeper = dispatch.api["sweeper"]
    dispatch.clock.set(MONDAY_9AM + timedelta(hours=1, minutes=31))  # past the warning point, not the deadline
    assert sweeper.run_once() == 1
    warned = dispatch.case()
    assert warned["level"] == "neighbourhood" and warned["timeline"][-1]["type"] == "warned"
    dispatch.clock.set(MONDAY_9AM + timedelta(hours=2, minutes=1))  # past the 邻's 2-hour accept limit
    assert sweeper.run_once() == 1
    climbed = dispatch.case()
    assert climbed["level"] == "group" and climbed["escalations"] == 1
    assert [(b["level"], b["kind"]) for b in climbed["breaches"]] == [("neighbourhood", "accept")]
    # Nothing is relayed here (no relay runs), so the outbox holds every event the case caused, in order.
    assert outbox_types(climbed) == ["case.assigned", "sla.warning", "sla.breached", "case.escalated"]
    assert climbed["step"] == case["step"] + 1


def test_nothing_is_due_before_the_warning_point(dispatch):
    dispatch.submit()
    dispatch.clock.set(MONDAY_9AM + timedelta(minutes=30))
    assert dispatch.api["sweeper"].run_once() == 0
    assert dispatch.case()["timeline"][-1]["type"] == "assigned"


def test_nothing_is_started_by_composing_the_service(dispatch):
    assert all(not getattr(task, "_thread", None) for task in dispatch.parts.tasks)


def test_climbing_the_chain_reads_each_post_only_when_it_is_asked_for(dispatch, monkeypatch):
    """Routing stops at the first post with a lead (most often the 邻 itself): the posts above it
    are not read for it (issue 16). The whole chain is still the same as chain_from's."""
    neighbourhood = next(u for u in dispatch.org.tree(DEMO_TOWNSHIP) if u["level"] == "neighbourhood")
    read: list[str] = []
    get = dispatch.org.units.get
    monkeypatch.setattr(dispatch.org.units, "get", lambda unit_id: read.append(unit_id) or get(unit_id))
    steps = dispatch.org.climb(neighbourhood["_id"])
    assert next(steps)["_id"] == neighbourhood["_id"] and read == [neighbourhood["_id"]]
    chain = [neighbourhood["_id"], *(u["_id"] for u in steps)]
    assert chain == [u["_id"] for u in dispatch.org.chain_from(neighbourhood["_id"])]
    assert [u["level"] for u in dispatch.org.chain_from(neighbourhood["_id"])] == \
        ["neighbourhood", "group", "area", "village", "township"]
