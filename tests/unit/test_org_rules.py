"""The directory's pure rules (services/dispatch/org.py): who holds a post, what an assignee looks like, a
post vacated by a red card staying vacant across roster re-imports (动态补齐 only by a new person), and the
visit schedule of households; and each township's SLA policy (services/dispatch/policies.py) on a fake org."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.dispatch import sla
from shared.domain.levels import COLLECTIVE_LEVELS, POST_TITLES
from services.dispatch.org import (VISIT_DAYS, _same_person, _vacancy_kept,
                                   _visits_kept, assignee_of, has_lead, township_unit_id)
from services.dispatch.policies import Policies
from shared.clock import iso
from tests.support.fakes.org import FakeOrg

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)
ZHOU = {"name": "周桂香", "phone": "13873100001"}
VACATED = {"at": "2026-10-01T00:00:00.000000Z", "card_id": "card-1", "reason": "红牌"}


def test_the_township_unit_id_is_derived_from_the_code():
    assert township_unit_id("430382100") == "t-430382100"


@pytest.mark.parametrize("level", ["neighbourhood", "group", "area"])
def test_a_post_is_held_only_with_a_named_lead(level):
    assert has_lead({"level": level, "lead": {"name": "周桂香"}})
    assert not has_lead({"level": level, "lead": None})
    assert not has_lead({"level": level, "lead": {"name": "", "phone": "13873100001"}})
    assert not has_lead({"level": level})


@pytest.mark.parametrize("level", COLLECTIVE_LEVELS)
def test_collective_levels_are_always_held(level):
    assert has_lead({"level": level, "lead": None})


def test_an_assignee_masks_the_leads_phone():
    a = assignee_of({"_id": "u-nb1", "level": "neighbourhood", "name": "第1邻", "lead": ZHOU})
    assert a == {"level": "neighbourhood", "unit_id": "u-nb1", "unit_name": "第1邻", "lead_id": "u-nb1",
                 "lead_name": "周桂香", "lead_phone_masked": "138****0001"}


def test_a_vacant_post_has_no_lead_in_its_assignee():
    a = assignee_of({"_id": "u-grp1", "level": "group", "name": "一组", "lead": None})
    assert a["lead_id"] is None and a["lead_name"] is None and a["lead_phone_masked"] is None


@pytest.mark.parametrize("level", COLLECTIVE_LEVELS)
def test_a_collective_body_is_named_by_its_title(level):
    a = assignee_of({"_id": "u-x", "level": level, "name": "韶山村", "lead": None})
    assert a["lead_name"] == POST_TITLES[level] and a["lead_id"] is None


@pytest.mark.parametrize("lead,removed,same", [
    ({"name": "周桂香", "phone": "138 7310 0001"}, {"name": "周桂芳", "phone": "13873100001"}, True),
    ({"name": "周桂香", "phone": "+86 13873100001"}, {"name": "周桂香", "phone": "13873100002"}, False),
    ({"name": "周桂香"}, {"name": "周桂香", "phone": "13873100001"}, True),
    ({"name": "周桂香", "phone": "13873100001"}, {"name": "周桂香"}, True),
    ({"name": "李春生"}, {"name": "周桂香"}, False),
    (None, {"name": "周桂香"}, False),
    ({}, {"name": "周桂香"}, False),
    ({"name": ""}, {"name": ""}, False),
])
def test_the_same_person_is_known_by_phone_first_then_by_name(lead, removed, same):
    assert _same_person(lead, removed) is same


def test_a_new_post_keeps_nothing():
    assert _vacancy_kept(None, ZHOU) == {}
    assert _vacancy_kept({}, ZHOU) == {}


def test_a_held_post_keeps_only_its_history_of_removed_leads():
    current = {"lead": ZHOU, "removed_leads": [{"name": "毛某"}]}
    assert _vacancy_kept(current, ZHOU) == {"removed_leads": [{"name": "毛某"}]}


def test_a_vacated_post_stays_vacant_when_the_reimport_still_names_the_removed_lead():
    current = {"lead": None, "vacated": VACATED, "removed_leads": [ZHOU]}
    kept = _vacancy_kept(current, {"name": "周桂香", "phone": "138-7310-0001"})
    assert kept == {"removed_leads": [ZHOU], "lead": None, "vacated": VACATED}


def test_a_vacated_post_stays_vacant_when_the_reimport_names_nobody():
    current = {"lead": None, "vacated": VACATED, "removed_leads": [ZHOU]}
    assert _vacancy_kept(current, None) == {"removed_leads": [ZHOU], "lead": None, "vacated": VACATED}


def test_a_new_person_fills_a_vacated_post():
    current = {"lead": None, "vacated": VACATED, "removed_leads": [ZHOU]}
    kept = _vacancy_kept(current, {"name": "李春生", "phone": "13873100002"})
    assert kept == {"removed_leads": [ZHOU]}  # no lead=None, no vacated: the import's lead stands


def test_a_post_vacated_twice_stays_vacant_for_either_removed_lead():
    li = {"name": "李春生", "phone": "13873100002"}
    current = {"lead": None, "vacated": VACATED, "removed_leads": [ZHOU, li]}
    assert _vacancy_kept(current, li)["lead"] is None
    assert _vacancy_kept(current, ZHOU)["lead"] is None


@pytest.mark.parametrize("key_household", [True, False])
def test_a_new_household_is_first_due_one_interval_from_now(key_household):
    kept = _visits_kept(None, key_household, NOW)
    due = iso(NOW + timedelta(days=VISIT_DAYS[key_household]))
    assert kept == {"visit_due": due, "next_visit_due": due, "last_visit_at": None, "visit_overdue_since": None}


def test_key_households_are_visited_weekly_and_others_monthly():
    assert VISIT_DAYS == {True: 7, False: 30}


def test_a_reimport_keeps_the_visit_record():
    current = {"visit_due": "2026-11-20T00:00:00.000000Z", "next_visit_due": "2026-11-20T00:05:00.000000Z",
               "last_visit_at": "2026-10-21T00:00:00.000000Z", "visit_overdue_since": None}
    assert _visits_kept(current, False, NOW) == current


def test_a_household_newly_marked_key_is_due_a_week_after_its_last_visit():
    current = {"visit_due": "2026-11-20T00:00:00.000000Z", "next_visit_due": "2026-11-20T00:00:00.000000Z",
               "last_visit_at": "2026-10-30T00:00:00.000000Z", "visit_overdue_since": None}
    kept = _visits_kept(current, True, NOW)
    assert kept["visit_due"] == kept["next_visit_due"] == "2026-11-06T00:00:00.000000Z"


def test_a_household_never_visited_keeps_its_due_time_when_marked_key():
    current = {"visit_due": "2026-11-20T00:00:00.000000Z", "next_visit_due": "2026-11-20T00:00:00.000000Z",
               "last_visit_at": None, "visit_overdue_since": "2026-11-21T00:00:00.000000Z"}
    assert _visits_kept(current, True, NOW) == current


# -- each township's policy ---------------------------------------------------------------------

def test_a_township_without_a_policy_uses_the_0211_defaults():
    policies = Policies(FakeOrg(townships=[{"_id": "430382100", "name": "清溪镇", "version": 1}]))
    assert sla.policy_to_dict(policies.get("430382100")) == sla.policy_to_dict(sla.default_policy())
    assert policies.is_default("430382100")
    assert policies.is_default("999999999")  # unknown townships too


def test_a_stored_policy_is_read_back_and_parsed_once_per_version():
    org = FakeOrg(townships=[{"_id": "430382100", "name": "清溪镇", "version": 1}])
    policies = Policies(org)
    text = sla.policy_to_dict(sla.default_policy())
    text["tiers"]["general"]["levels"]["neighbourhood"]["warn_at"] = 0.5
    policies.put("430382100", sla.policy_from_dict(text), actor="staff:王")
    assert ("upsert_township", "430382100") in org.calls
    first = policies.get("430382100")
    assert first.tiers["general"].levels["neighbourhood"].warn_at == 0.5 and not policies.is_default("430382100")
    assert policies.get("430382100") is first  # same version: the parsed policy is reused
    org.townships_by_code["430382100"]["version"] += 1
    assert policies.get("430382100") is not first  # a new version is parsed again


def test_putting_a_policy_records_who_changed_it_in_text_form():
    org = FakeOrg(townships=[{"_id": "430382100", "name": "清溪镇", "version": 1}])
    Policies(org).put("430382100", sla.default_policy(), actor="operator")
    doc = org.township("430382100")
    assert doc["policy_changed_by"] == "operator" and doc["policy"] == sla.policy_to_dict(sla.default_policy())


def test_a_policy_for_an_unknown_township_is_refused():
    with pytest.raises(LookupError):
        Policies(FakeOrg()).put("999999999", sla.default_policy(), actor="operator")
