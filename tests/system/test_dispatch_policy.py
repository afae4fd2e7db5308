"""A township's SLA policy over HTTP: defaults, replacing it, validation naming the field, tenancy."""
from __future__ import annotations

import copy
from datetime import timedelta

from services.dispatch import sla
from shared.clock import iso
from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.dispatch import TOWNSHIP, case, holder, posts, submit


URL = f"/api/v1/townships/{TOWNSHIP}/sla-policy"


def edited(**changes) -> dict:
    policy = copy.deepcopy(sla.DEFAULT_POLICY)
    policy["tiers"]["general"]["levels"]["neighbourhood"].update(changes)
    return policy


def test_the_default_policy_is_the_0211_table(system, web, demo):
    resp = web.get(URL, headers=token(system, "staff"))
    assert resp.status_code == 200
    assert resp.json == sla.policy_to_dict(sla.default_policy())
    assert resp.json["tiers"]["general"]["levels"]["township"] == {"accept": "8h", "resolve": "2wd", "warn_at": 0.75}


def test_staff_replace_it_and_new_assignments_follow(system, web, demo, clock):
    staff = token(system, "staff", name="镇综治中心")
    before = submit(system, web)
    resp = web.put(URL, json=edited(accept="30m"), headers=staff)
    assert resp.status_code == 200, resp.json
    assert resp.json["tiers"]["general"]["levels"]["neighbourhood"]["accept"] == "30m"
    assert web.get(URL, headers=staff).json == resp.json
    # What GET returns can be PUT back as it is.
    assert web.put(URL, json=web.get(URL, headers=staff).json, headers=ADMIN_HEADERS).status_code == 200

    after = submit(system, web)
    assert case(system, after)["accept_due"] == iso(clock.now() + timedelta(minutes=30))
    assert case(system, before)["accept_due"] == iso(clock.now() + timedelta(hours=2))  # opened under the old one


def test_a_changed_category_tier_applies_to_new_cases(system, web, demo):
    policy = copy.deepcopy(sla.DEFAULT_POLICY)
    policy["category_tiers"]["environment"] = "difficult"
    assert web.put(URL, json=policy, headers=token(system, "staff")).status_code == 200
    assert case(system, submit(system, web))["tier"] == "difficult"


def test_invalid_policies_are_refused_naming_the_field(system, web, demo):
    staff = token(system, "staff")
    bad_duration = web.put(URL, json=edited(accept="2 days"), headers=staff)
    assert bad_duration.status_code == 422
    assert "accept" in bad_duration.json["errors"]["json"]["tiers"]["general"]["levels"]["neighbourhood"]

    zero = web.put(URL, json=edited(resolve="0h"), headers=staff)
    assert "resolve" in zero.json["errors"]["json"]["tiers"]["general"]["levels"]["neighbourhood"]

    warn = web.put(URL, json=edited(warn_at=1.5), headers=staff)
    assert "warn_at" in warn.json["errors"]["json"]["tiers"]["general"]["levels"]["neighbourhood"]

    missing = copy.deepcopy(sla.DEFAULT_POLICY)
    del missing["category_tiers"]["road"]
    assert "road" in web.put(URL, json=missing, headers=staff).json["errors"]["json"]["category_tiers"]

    extra = copy.deepcopy(sla.DEFAULT_POLICY)
    extra["colour"] = "red"
    assert "colour" in web.put(URL, json=extra, headers=staff).json["errors"]["json"]

    reordered = copy.deepcopy(sla.DEFAULT_POLICY)
    reordered["levels"] = list(reversed(reordered["levels"]))
    assert "levels" in web.put(URL, json=reordered, headers=staff).json["errors"]["json"]

    assert web.put(URL, json=[], headers=staff).status_code == 422
    assert web.get(URL, headers=staff).json == sla.policy_to_dict(sla.default_policy())


def test_who_may_read_and_change_it(system, web, demo):
    p = posts(system)
    other_staff = token(system, "staff", townships=("430382101",))
    assert web.get(URL, headers=other_staff).status_code == 404
    assert web.put(URL, json=sla.DEFAULT_POLICY, headers=other_staff).status_code == 404
    assert web.get(URL, headers=holder(system, p["neighbourhood"])).status_code == 403
    assert web.put(URL, json=sla.DEFAULT_POLICY, headers=token(system, "client")).status_code == 403
    assert web.get(URL).status_code == 401
    # A township nobody registered has no policy to read, even for the operator.
    assert web.get("/api/v1/townships/430382199/sla-policy", headers=ADMIN_HEADERS).status_code == 404
    assert web.put(URL, json=sla.DEFAULT_POLICY, headers=ADMIN_HEADERS).status_code == 200
