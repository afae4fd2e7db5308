"""Climbing the chain 邻 → 组 → 片 → 村 → 镇 → 市直部门 (services/dispatch/chain.py) on a fake directory:
who holds a case next, which vacant posts are passed and named, and when the city's departments take over."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.dispatch import sla, transitions
from services.dispatch.cases import new_case
from services.dispatch.chain import Escalator
from services.dispatch.org import township_unit_id
from services.dispatch.policies import Policies
from tests.support.fakes.org import FakeOrg

TOWNSHIP = "430382100"
AT = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)  # Monday 09:00 in Shaoshan
STAFF = transitions.Actor("镇综治中心", "staff")


def unit(_id, level, parent, lead="某某"):
    return {"_id": _id, "level": level, "name": _id, "parent_id": parent, "township": TOWNSHIP,
            "lead": {"name": lead, "phone": "13873100001"} if lead else None}


def chain(*vacant: str) -> list[dict]:
    """邻 u-nb → 组 u-grp → 片 u-area → 村 u-vil → 镇; the posts named in `vacant` have nobody in post."""
    ids = [("u-nb", "neighbourhood", "u-grp"), ("u-grp", "group", "u-area"), ("u-area", "area", "u-vil"),
           ("u-vil", "village", township_unit_id(TOWNSHIP))]
    units = [unit(i, level, parent, lead=None if i in vacant else "某某") for i, level, parent in ids]
    return units + [unit(township_unit_id(TOWNSHIP), "township", None, lead=None)]


def escalator(units: list[dict]) -> tuple[Escalator, FakeOrg]:
    org = FakeOrg(units, townships=[{"_id": TOWNSHIP, "name": "清溪镇", "version": 1}])
    return Escalator(org, Policies(org)), org


def case_at(org: FakeOrg, unit_id: str) -> dict:
    report = {"report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "category": "environment",
              "description": "门口路灯坏了", "submitted_at": "2026-11-02T01:00:00.000000Z", "channel": "phone"}
    case, _ = new_case(report, TOWNSHIP, org.unit(unit_id), sla.default_policy(), AT, located=True,
                       neighbourhood_id="u-nb", skipped=[], event_id="e-1")
    return case


@pytest.mark.parametrize("start,expected", [("u-nb", "u-grp"), ("u-grp", "u-area"), ("u-area", "u-vil"),
                                            ("u-vil", township_unit_id(TOWNSHIP))])
def test_the_next_holder_is_the_post_directly_above_when_it_is_held(start, expected):
    esc, org = escalator(chain())
    holder, skipped = esc.next_holder(case_at(org, start))
    assert holder["_id"] == expected and skipped == []


@pytest.mark.parametrize("vacant,start,expected", [
    (("u-grp",), "u-nb", "u-area"),
    (("u-grp", "u-area"), "u-nb", "u-vil"),
    (("u-area",), "u-grp", "u-vil"),
    (("u-grp", "u-area"), "u-grp", "u-vil"),
])
def test_vacant_posts_are_passed_and_listed_in_order(vacant, start, expected):
    esc, org = escalator(chain(*vacant))
    holder, skipped = esc.next_holder(case_at(org, start))
    assert holder["_id"] == expected
    assert [u["_id"] for u in skipped] == [v for v in ("u-grp", "u-area") if v in vacant and v != start]


def test_a_village_committee_is_never_vacant_even_without_a_named_lead():
    units = chain("u-grp", "u-area")
    units[3]["lead"] = None  # the village: a body, not a post
    esc, org = escalator(units)
    holder, skipped = esc.next_holder(case_at(org, "u-nb"))
    assert holder["_id"] == "u-vil" and [u["_id"] for u in skipped] == ["u-grp", "u-area"]


def test_a_case_held_by_the_township_goes_to_the_departments_next():
    esc, org = escalator(chain())
    case = case_at(org, township_unit_id(TOWNSHIP))
    assert esc.next_holder(case) == (None, [])


def test_a_post_removed_from_the_org_hands_the_case_to_the_township():
    esc, org = escalator(chain())
    case = case_at(org, "u-nb")
    del org.units["u-nb"]  # a roster re-import removed the post
    holder, skipped = esc.next_holder(case)
    assert holder["_id"] == township_unit_id(TOWNSHIP) and skipped == []


def test_a_parent_missing_from_the_org_hands_the_case_to_the_township():
    units = chain()
    esc, org = escalator(units)
    case = case_at(org, "u-nb")
    del org.units["u-grp"]
    holder, _ = esc.next_holder(case)
    assert holder["_id"] == township_unit_id(TOWNSHIP)


def test_a_township_without_its_unit_is_created_on_the_way():
    units = [u for u in chain() if u["level"] != "township"]
    units[-1]["parent_id"] = None  # the village's parent was never stored
    esc, org = escalator(units)
    holder, _ = esc.next_holder(case_at(org, "u-vil"))
    assert holder["_id"] == township_unit_id(TOWNSHIP) and holder["level"] == "township"
    assert ("ensure_township", TOWNSHIP) in org.calls


def test_escalating_moves_the_case_up_and_names_the_vacancies_in_the_timeline():
    esc, org = escalator(chain("u-grp"))
    case = case_at(org, "u-nb")
    [event] = esc.escalate(case, AT, reason="超出本级处理能力", actor=STAFF)
    assert event["type"] == "case.escalated"
    assert case["unit_id"] == "u-area" and case["level"] == "area" and case["escalations"] == 1
    assert case["status"] == "assigned"
    entry = case["timeline"][-1]
    assert entry["type"] == "escalated" and entry["skipped"] == "组“u-grp”岗位空缺"
    assert entry["from_level"] == "neighbourhood" and entry["reason"] == "超出本级处理能力"
    assert event["payload"]["previous"]["unit_id"] == "u-nb"


def test_escalating_from_the_township_refers_the_case_to_the_departments():
    esc, org = escalator(chain())
    case = case_at(org, township_unit_id(TOWNSHIP))
    [event] = esc.escalate(case, AT, reason="需要部门协调解决", actor=STAFF, note="涉及道路改造")
    assert event["type"] == "case.referred"
    assert case["status"] == "referred" and case["level"] == "department" and case["unit_id"] is None
    assert case["assignee"] == transitions.DEPARTMENT_ASSIGNEE
    assert case["timeline"][-1]["note"] == "涉及道路改造"


def test_a_closed_case_cannot_climb():
    esc, org = escalator(chain())
    case = case_at(org, "u-nb")
    case["status"] = "resolved"
    with pytest.raises(transitions.WrongState, match="不能上报"):
        esc.escalate(case, AT, reason="超出本级处理能力", actor=STAFF)


def test_each_step_up_restarts_the_clocks_of_the_new_level():
    esc, org = escalator(chain())
    case = case_at(org, "u-nb")
    first_accept_due = case["accept_due"]
    later = datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc)
    esc.escalate(case, later, reason="超出本级处理能力", actor=STAFF)
    assert case["assigned_at"].startswith("2026-11-02T03:00") and case["accept_due"] > first_accept_due
    assert case["warned"] == [] and case["step"] == 2


def test_climbing_the_whole_chain_ends_with_the_departments():
    esc, org = escalator(chain())
    case = case_at(org, "u-nb")
    levels = []
    while case["status"] != "referred":
        esc.escalate(case, AT, reason="超出本级处理能力", actor=STAFF)
        levels.append(case["level"])
    assert levels == ["group", "area", "village", "township", "department"]
    assert case["escalations"] == 5


def test_a_sweep_s_batch_reads_each_unit_and_township_once_and_only_inside_the_block():
    from services.dispatch.org import OrgRepository
    from shared.clock import FakeClock
    from tests.support.fakes.memory_store import MemoryStore

    store = MemoryStore()
    org = OrgRepository(store, FakeClock(AT), lambda *a: None)
    org.ensure_township(TOWNSHIP, "清溪镇")
    store.units_reads = 0
    units = org.units
    counted = units.get

    def get(doc_id):
        store.units_reads += 1
        return counted(doc_id)
    units.get = get
    with org.reading_once():
        with org.reading_once():  # nested: the outer block's memory
            assert org.unit(township_unit_id(TOWNSHIP))["level"] == "township"
        assert org.unit(township_unit_id(TOWNSHIP))["level"] == "township"
        assert org.unit("u-new") is None and org.unit("u-new") is None  # not there: asked again, never remembered
    assert store.units_reads == 3
    org.unit(township_unit_id(TOWNSHIP))
    assert store.units_reads == 4  # outside the block every read goes to the store
