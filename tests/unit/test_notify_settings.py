"""Notify's settings from the environment (services/notify/config.py): routes per township and recipient
kind, quiet hours, the rate limit, the SMS budget, staff and department contacts; each bad value refused at
start-up naming the variable, never echoing a secret."""
from __future__ import annotations

import json
from datetime import time

import pytest

from services.notify.config import (DEFAULT_ROUTE, ConfigError, NotifySettings, QuietHours, parse_budget,
                                    parse_quiet_hours, parse_rate, parse_routes)

P = "SANZHANG_NOTIFY_"


def settings(**env) -> NotifySettings:
    return NotifySettings.from_env({(k if k.startswith("SANZHANG_") else P + k): v for k, v in env.items()})


def test_the_defaults():
    s = settings()
    assert s.routes.for_("430382100", "lead") == DEFAULT_ROUTE == ("console",)
    assert (s.quiet.start, s.quiet.end, s.quiet.enabled) == (time(22), time(7), True)
    assert s.quiet_kinds == {"resident", "lead"} and s.exempt_channels == {"console"}
    assert s.urgent_categories == {"hazard"} and (s.rate_limit, s.rate_window) == (5, 600)
    assert s.budget_for("430382100") == 300 and s.signature == "三长制" and s.receipt_secret is None


def test_empty_variables_mean_the_defaults():
    assert settings(ROUTES="", QUIET_HOURS=" ", RATE_LIMIT="", SMS_BUDGET="") == settings()


def test_a_townships_own_route_wins_per_kind_and_the_default_fills_the_rest():
    routes = parse_routes({"default": {"lead": ["wecom", "aliyun_sms"], "resident": ["aliyun_sms"]},
                           "430382100": {"lead": ["aliyun_sms"]}})
    assert routes.for_("430382100", "lead") == ("aliyun_sms",)
    assert routes.for_("430382100", "resident") == ("aliyun_sms",)
    assert routes.for_("430382101", "lead") == ("wecom", "aliyun_sms")
    assert routes.for_("430382101", "staff") == DEFAULT_ROUTE
    assert routes.channel_names() == {"wecom", "aliyun_sms"}


@pytest.mark.parametrize("data,fragment", [
    ([], "must be a JSON object"),
    ({"4303821": {"lead": ["console"]}}, "9-digit township code"),
    ({"default": ["console"]}, "object of kind"),
    ({"default": {"mayor": ["console"]}}, "unknown recipient kind 'mayor'"),
    ({"default": {"lead": []}}, "non-empty list"),
    ({"default": {"lead": "console"}}, "non-empty list"),
    ({"default": {"lead": ["console", ""]}}, "non-empty list"),
    ({"default": {"lead": ["console", "console"]}}, "names a channel twice"),
])
def test_bad_routes_are_refused_naming_where(data, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_routes(data)


def test_routes_that_are_not_json_name_the_variable():
    with pytest.raises(ConfigError, match=P + "ROUTES is not valid JSON"):
        settings(ROUTES="{lead: console}")


@pytest.mark.parametrize("raw,start,end,enabled", [
    ("22:00-07:00", time(22), time(7), True), (" 21:30 - 06:45 ", time(21, 30), time(6, 45), True),
    ("off", None, None, False), ("none", None, None, False), ("-", None, None, False),
    ("08:00-08:00", time(8), time(8), False),
])
def test_quiet_hours(raw, start, end, enabled):
    quiet = parse_quiet_hours(raw)
    assert (quiet.start, quiet.end, quiet.enabled) == (start, end, enabled)


@pytest.mark.parametrize("raw", ["22-7", "22:00", "late", "25:00-07:00", "22:00-07:00-08:00"])
def test_bad_quiet_hours_are_refused(raw):
    with pytest.raises(ConfigError, match="QUIET_HOURS must look like 22:00-07:00"):
        parse_quiet_hours(raw)


@pytest.mark.parametrize("raw,expected", [("5/600", (5, 600)), ("10", (10, 600)), ("3/60", (3, 60)),
                                          ("off", (0, 600)), ("0", (0, 600)), ("none", (0, 600))])
def test_the_rate_limit(raw, expected):
    assert parse_rate(raw) == expected


@pytest.mark.parametrize("raw,fragment", [("five/600", "must be an integer"), ("5/0", "at least 1"),
                                          ("-1/600", "at least 0"), ("5/ten", "must be an integer")])
def test_bad_rate_limits_are_refused(raw, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_rate(raw)


@pytest.mark.parametrize("raw,township,budget", [
    ("300", "430382100", 300), ("0", "430382100", 0),
    ('{"default": 100, "430382100": 20}', "430382100", 20), ('{"default": 100, "430382100": 20}', "430382101", 100),
    ('{"430382100": 20}', "430382101", 0),
])
def test_the_sms_budget_per_township(raw, township, budget):
    assert NotifySettings(sms_budget=parse_budget(raw)).budget_for(township) == budget


@pytest.mark.parametrize("raw", ["-5", '{"default": -1}', '{"default": "many"}', "[1, 2]", "lots"])
def test_bad_sms_budgets_are_refused(raw):
    with pytest.raises(ConfigError, match="SMS_BUDGET"):
        parse_budget(raw)


@pytest.mark.parametrize("env,fragment", [
    ({"QUIET_KINDS": "resident,mayor"}, "unknown recipient kinds \\['mayor'\\]"),
    ({"MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS must be at least 1"),
    ({"MAX_ATTEMPTS": "many"}, "MAX_ATTEMPTS must be an integer"),
    ({"RETRY_BASE": "-1"}, "RETRY_BASE must not be negative"),
    ({"SEND_LEASE": "soon"}, "SEND_LEASE must be a number"),
    ({"TOWNSHIP_STAFF": '{"430382100": [{"title": "x"}]}'}, "TOWNSHIP_STAFF\\[430382100\\] must be an object"),
    ({"TOWNSHIP_STAFF": '["x"]'}, "TOWNSHIP_STAFF must be an object"),
    ({"DEPARTMENTS": '{"d-zjj": {}}'}, "DEPARTMENTS\\[d-zjj\\]"),
    ({"DEPARTMENTS": "[]"}, "DEPARTMENTS must be an object"),
])
def test_bad_settings_fail_start_up_naming_the_variable(env, fragment):
    with pytest.raises(ConfigError, match=fragment):
        settings(**env)


def test_a_short_receipt_secret_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as err:
        settings(RECEIPT_SECRET="short-secret")
    assert "at least 16 characters" in str(err.value) and "short-secret" not in str(err.value)
    assert settings(RECEIPT_SECRET="a-long-enough-secret-0123").receipt_secret == "a-long-enough-secret-0123"


def test_the_secret_is_not_in_the_settings_repr():
    assert "a-long-enough-secret-0123" not in repr(settings(RECEIPT_SECRET="a-long-enough-secret-0123"))


@pytest.mark.parametrize("env,signature", [
    ({}, "三长制"), ({"SANZHANG_ALIYUN_SMS_SIGN_NAME": "韶山三长制"}, "韶山三长制"),
    ({"SANZHANG_TENCENT_SMS_SIGN_NAME": "清溪镇"}, "清溪镇"),
    ({"SIGNATURE": "三长办", "SANZHANG_ALIYUN_SMS_SIGN_NAME": "韶山三长制"}, "三长办"),
])
def test_the_signature_comes_from_the_setting_else_the_sms_sign_name(env, signature):
    assert settings(**env).signature == signature


def test_lists_can_be_switched_off():
    s = settings(QUIET_KINDS="none", EXEMPT_CHANNELS="off", URGENT_CATEGORIES="hazard, dispute")
    assert s.quiet_kinds == frozenset() and s.exempt_channels == frozenset()
    assert s.urgent_categories == {"hazard", "dispute"}


def test_staff_and_department_contacts_keep_only_what_is_given():
    staff = {"430382100": [{"name": "值班室", "wecom_id": "zhiban", "phone": ""}]}
    s = settings(TOWNSHIP_STAFF=json.dumps(staff, ensure_ascii=False),
                 DEPARTMENTS=json.dumps({"d-zjj": {"name": "住建局", "phone": "13873100201"}}, ensure_ascii=False))
    assert s.township_staff == {"430382100": [{"name": "值班室", "wecom_id": "zhiban"}]}
    assert s.departments == {"d-zjj": {"name": "住建局", "phone": "13873100201"}}


def test_a_single_staff_contact_need_not_be_a_list():
    s = settings(TOWNSHIP_STAFF=json.dumps({"430382100": {"name": "值班室", "wecom_id": "zhiban"}}))
    assert s.township_staff["430382100"] == [{"name": "值班室", "wecom_id": "zhiban"}]


def test_quiet_hours_default_to_ten_at_night_until_seven():
    assert QuietHours() == QuietHours(time(22), time(7))
