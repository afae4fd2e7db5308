"""Which case news reaches the resident (services/notify/resident_policy.py): the rule itself, and
notify applying it on the in-memory storage fake (the whole climb, embedded, is in
tests/system/test_resident_messages.py)."""
from __future__ import annotations

import pytest

from services.notify.resident_policy import (
    ESSENTIAL, EVERY_STEP, RESIDENT_NEWS, needs_once, news_of, tell,
)
from tests.support.fakes.memory_store import MemoryStore
from tests.support.notify import RESIDENT_PHONE, Harness, case_payload, event

CLIMB = ("u-nb1", "u-grp1", "u-area1")


@pytest.fixture
def h(tmp_path):
    return Harness(tmp_path, store=MemoryStore())


def to_resident(h) -> list[dict]:
    return h.deliveries(recipient_kind="resident")


def department_assigned(role: str | None = "lead", department: str = "市住建局") -> dict:
    payload = {"case_id": "c" * 32, "report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "department_id": "d-zjj",
               "department_name": department, "category": "housing", "due_at": "2026-11-09T09:30:00.000000Z"}
    if role:
        payload["role"] = role
    return event("department.assigned", payload)


def rating_requested(resolution: int) -> dict:
    return event("report.rating_requested", {"report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "case_id": "c" * 32,
                                             "category": "road", "resolution": resolution,
                                             "rate_url": "https://qx.example.cn/r/7KQ4M2XC"})


# -- the rule ----------------------------------------------------------------------------------------
def test_the_rule_tells_each_news_once_under_essential():
    assert tell(ESSENTIAL, "case.accepted", None, "e1")            # not told yet
    assert tell(ESSENTIAL, "case.accepted", "e1", "e1")            # the same event again (redelivered)
    assert not tell(ESSENTIAL, "case.accepted", "e1", "e2")        # a later level's acceptance
    assert not tell(ESSENTIAL, "department.assigned", "e1", "e2")  # a re-route after a return
    assert tell(ESSENTIAL, "report.rating_requested", "e1", "e2")  # needs their answer: every resolution


def test_every_step_tells_every_acceptance():
    assert tell(EVERY_STEP, "case.accepted", "e1", "e2")
    assert not needs_once(EVERY_STEP, "case.accepted") and needs_once(ESSENTIAL, "case.accepted")


@pytest.mark.parametrize("event_type", ["case.assigned", "case.escalated", "case.progress", "case.supervised",
                                        "case.resolved", "case.signed_off", "sla.breached", "case.referred"])
def test_steps_that_are_never_texted_to_residents(event_type):
    assert news_of(event_type) is None
    assert not tell(ESSENTIAL, event_type, None, "e1") and not tell(EVERY_STEP, event_type, None, "e1")


def test_every_news_names_how_often_it_is_told():
    assert {how for _, how in RESIDENT_NEWS.values()} <= {"once", "answer"}
    assert {news for news, _ in RESIDENT_NEWS.values()} == {"accepted", "merged", "department", "resolved",
                                                             "more_information"}


# -- notify applying it --------------------------------------------------------------------------------
def test_a_climbing_case_tells_the_resident_of_its_first_acceptance_only(h):
    h.report()
    for unit in CLIMB:
        h.handle(event("case.accepted", case_payload(unit, status="accepted")))
    [d] = to_resident(h)
    assert d["template_key"] == "case.accepted:resident" and "第1邻邻长接单" in d["text"]
    # the holders still hear everything meant for them: only the resident's texts are fewer
    assert len(h.deliveries()) == 1


def test_a_redelivered_acceptance_is_still_the_one_told(h):
    h.report()
    first = event("case.accepted", case_payload("u-nb1", status="accepted"))
    h.handle(first)
    h.handle(first)
    assert len(to_resident(h)) == 1


def test_every_step_texts_each_level(h):
    h.service.set_resident_policy("430382100", EVERY_STEP, "清溪镇李干事")
    h.report()
    for unit in CLIMB:
        h.handle(event("case.accepted", case_payload(unit, status="accepted")))
    assert len(to_resident(h)) == 3
    assert h.service.resident_policy("430382100")["updated_by"] == "清溪镇李干事"


def test_the_policy_is_per_township(h):
    h.service.set_resident_policy("430382101", EVERY_STEP, "邻镇干事")
    assert h.service.resident_policy("430382100")["policy"] == ESSENTIAL
    h.report()
    for unit in CLIMB:
        h.handle(event("case.accepted", case_payload(unit, status="accepted")))
    assert len(to_resident(h)) == 1


def test_the_lead_department_is_news_once_a_co_handler_never(h):
    h.report()
    h.handle(department_assigned("co", "电信公司"))
    assert to_resident(h) == []
    h.handle(department_assigned("lead"))
    h.handle(department_assigned("lead", "市水利局"))  # re-routed after a return
    [d] = to_resident(h)
    assert d["template_key"] == "department.assigned:resident" and d["to"]["phone"] == RESIDENT_PHONE
    assert "市住建局" in d["text"] and "7KQ4M2XC" in d["text"] and d["segments"] == 1


def test_each_resolution_asks_for_a_rating(h):
    h.report()
    h.handle(rating_requested(1))
    h.handle(rating_requested(2))   # reopened, resolved again: it asks again
    assert [d["event_type"] for d in to_resident(h)] == ["report.rating_requested"] * 2


def test_a_reporter_without_a_phone_is_texted_nothing(h):
    h.report(phone=None)
    h.handle(event("case.accepted", case_payload("u-nb1", status="accepted")))
    h.handle(department_assigned("lead"))
    h.handle(rating_requested(1))
    assert to_resident(h) == []
    assert h.service.dead.find({}) == []   # not a failed delivery either: there was nobody to text
