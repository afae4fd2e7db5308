"""Posts nobody could reach (services/dispatch/reachability.py): the preview's list, and the seam
other contacts (a village committee's, the township staff's) plug into."""
from __future__ import annotations

import pytest

from services.dispatch.reachability import lead_contacts, unreachable_posts
from services.dispatch.roster import Lead, Org, Unit

TOWNSHIP = "430382100"


def org(*leads: Lead | None) -> Org:
    units = {"u-v": Unit("u-v", "village", "韶山村", None, TOWNSHIP)}
    for i, lead in enumerate(leads):
        units[f"u-n{i}"] = Unit(f"u-n{i}", "neighbourhood", f"第{i + 1}邻", "u-v", TOWNSHIP, lead)
    return Org(TOWNSHIP, units)


def contacts_of(o: Org) -> list[dict]:
    return lead_contacts([{"_id": u.id, "lead": u.lead and {"name": u.lead.name, "phone": u.lead.phone,
                                                             "wecom_id": u.lead.wecom_id}}
                          for u in o.units.values()])


@pytest.mark.parametrize("lead, channels, unreachable", [
    (Lead("周桂香", "13873100003"), None, False),                # a mobile takes SMS
    (Lead("周桂香", "0731-55512345"), None, True),               # a landline does not, and no WeCom id
    (Lead("周桂香", "0731-55512345", "zhougx"), None, False),    # WeCom reaches them
    (Lead("周桂香", "13873100003"), ("wecom",), True),           # WeCom only, and they have no id
    (Lead("周桂香", "0731-55512345"), ("voice",), False),        # a call reaches a landline
])
def test_a_post_is_unreachable_when_no_channel_reaches_its_holder(lead, channels, unreachable):
    o = org(lead)
    found = unreachable_posts(o, contacts_of(o), channels)
    assert [f["unit_id"] for f in found] == (["u-n0"] if unreachable else [])
    if unreachable:
        assert found[0]["name"] == "周桂香" and found[0]["reason"].startswith("没有可用的联系方式")


def test_vacancies_and_villages_are_not_listed():
    o = org(None)
    assert unreachable_posts(o, contacts_of(o)) == []


def test_another_contact_for_the_post_makes_it_reachable():
    o = org(Lead("周桂香", "0731-55512345"))
    extra = [{"unit_id": "u-n0", "name": "村委会值班", "phone": "13873100099", "wecom_id": None}]
    assert unreachable_posts(o, contacts_of(o) + extra) == []
