"""Escalation's pure rules: clock policy layering, credential hashing, department name folding."""
from __future__ import annotations

from services.escalation.directory import check_secret, hash_secret, name_key
from services.escalation.policy import effective


def test_clock_policy_layers_department_over_city_over_defaults():
    assert effective(None, None).as_text() == {"accept": "1wd", "finish": "10wd", "warn_at": 0.75,
                                               "return_window": "1wd"}
    city = {"sla": {"finish": "15wd", "warn_at": 0.5}}
    dept = {"sla": {"finish": "20wd", "accept": "4h"}}
    assert effective(city, dept).as_text() == {"accept": "4h", "finish": "20wd", "warn_at": 0.5,
                                               "return_window": "1wd"}
    assert effective(city, {"sla": None}).as_text()["finish"] == "15wd"


def test_secrets_are_stored_salted_and_checked_in_constant_time():
    first, second = hash_secret("s3cret-value"), hash_secret("s3cret-value")
    assert first["salt"] != second["salt"] and first["hash"] != second["hash"]
    assert "s3cret-value" not in str(first)
    assert check_secret("s3cret-value", first) and not check_secret("s3cret-valuE", first)


def test_department_names_fold_full_width_and_spaces():
    assert name_key("韶山市 住建局") == name_key("韶山市住建局") == name_key("韶山市住建局\u3000")
    assert name_key("（市）住建局") == name_key("(市)住建局")
