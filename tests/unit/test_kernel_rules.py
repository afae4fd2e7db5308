"""The kernel's small rules: text folding, categories and tiers, levels and their two kinds of
names, statuses, derived ids, the local time zone and the demo township."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.domain import categories, demo, ids, levels, localtime, statuses, workdays
from shared.domain.addresses import normalise_address


# -- addresses and text cells ----------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("  韶山村一组12号 ", "韶山村一组12号"),
    ("韶山村　一组\t１２号", "韶山村 一组 12号"),
    ("韶山村（老屋场）", "韶山村(老屋场)"),
    ("一组\u200b", "一组"),
    ("村(社区)\n", "村(社区)"),
    ("", ""),
])
def test_normalise_address(raw, expected):
    assert normalise_address(raw) == expected


def test_normalise_address_is_idempotent():
    once = normalise_address(" 韶山村　（老屋场）１２号 ")
    assert normalise_address(once) == once


# -- categories and tiers --------------------------------------------------------------------------

def test_categories_and_tiers():
    assert categories.TIERS == ("instant", "general", "difficult", "complex")
    assert len(categories.CATEGORIES) == 10 and categories.CATEGORIES["hazard"] == "安全隐患"
    assert categories.category_name("road") == "道路交通"
    assert categories.category_name("unknown") == "unknown"


def test_every_default_category_has_a_default_tier():
    from services.dispatch.sla import default_policy

    assert set(default_policy().category_tiers) == set(categories.CATEGORIES)
    assert set(default_policy().category_tiers.values()) <= set(categories.TIERS)


# -- levels: the unit's name and the post's title are two maps -------------------------------------

def test_unit_names_and_post_titles_are_different_maps():
    assert levels.UNIT_NAMES["neighbourhood"] == "邻" and levels.POST_TITLES["neighbourhood"] == "邻长"
    assert levels.UNIT_NAMES["group"] == "组" and levels.POST_TITLES["group"] == "组长"
    assert levels.UNIT_NAMES["area"] == "片" and levels.POST_TITLES["area"] == "片长"
    assert levels.UNIT_NAMES["village"] == "村(社区)" and levels.POST_TITLES["village"] == "村(社区)两委"
    assert levels.UNIT_NAMES["township"] == "镇(街道)" and levels.POST_TITLES["township"].startswith("镇(街道)")
    assert levels.UNIT_NAMES["department"] == levels.POST_TITLES["department"] == "市直部门"


def test_every_level_has_both_names():
    every = {*levels.CHAIN_LEVELS, levels.DEPARTMENT}
    assert set(levels.UNIT_NAMES) == set(levels.POST_TITLES) == every


def test_level_groupings():
    assert levels.CHAIN_LEVELS == ("neighbourhood", "group", "area", "village", "township")
    assert levels.ROSTER_LEVELS == ("village", "area", "group", "neighbourhood")
    assert set(levels.LEAD_LEVELS) | set(levels.COLLECTIVE_LEVELS) == set(levels.CHAIN_LEVELS)
    assert not set(levels.LEAD_LEVELS) & set(levels.COLLECTIVE_LEVELS)


def test_unknown_levels_read_gracefully():
    assert levels.unit_name("area") == "片" and levels.unit_name("moon") == "moon" and levels.unit_name(None) == ""
    assert levels.post_title("area") == "片长" and levels.post_title("moon") == "" and levels.post_title(None) == ""


# -- statuses --------------------------------------------------------------------------------------

def test_open_and_closed_statuses():
    assert statuses.OPEN_STATUSES == ("assigned", "accepted")
    assert not set(statuses.OPEN_STATUSES) & set(statuses.CLOSED_STATUSES)
    assert statuses.is_open("accepted") and not statuses.is_open("resolved") and not statuses.is_open(None)


# -- derived ids -----------------------------------------------------------------------------------

def test_case_id_is_derived_from_the_report():
    assert ids.case_id_for("r1") == ids.case_id_for("r1") == ids.derived_id("case", "r1")
    assert ids.case_id_for("r1") != ids.case_id_for("r2")
    assert len(ids.case_id_for("r1")) == 32


def test_township_unit_id():
    assert ids.township_unit_id("430382100") == "t-430382100"


def test_other_ids():
    assert ids.new_id() != ids.new_id() and len(ids.new_id()) == 32
    assert ids.short_hash("a", "b") == ids.short_hash("a", "b") and len(ids.short_hash("a", length=8)) == 8
    number = ids.tracking_number()
    assert len(number) == 8 and not set(number) & set("01OIL")


# -- the local time zone ---------------------------------------------------------------------------

@pytest.fixture
def restore_zone():
    yield
    localtime.configure(None)


def test_the_default_zone_is_china(restore_zone):
    assert localtime.local_zone() == ZoneInfo("Asia/Shanghai")
    assert localtime.configure("") == ZoneInfo("Asia/Shanghai")


def test_configured_once_used_by_working_days(restore_zone):
    # 2026-10-09 is a Friday and a working day; 20:00 UTC is already Saturday in Shanghai.
    start = datetime(2026, 10, 9, 20, 0, tzinfo=timezone.utc)
    in_china = workdays.add_working_days(start, 1)
    localtime.configure("UTC")
    assert localtime.local_zone() == ZoneInfo("UTC")
    assert workdays.add_working_days(start, 1) != in_china


def test_an_unknown_zone_is_refused(restore_zone):
    with pytest.raises(ValueError, match="SANZHANG_TIMEZONE"):
        localtime.configure("Mars/Olympus")
    assert localtime.local_zone() == ZoneInfo("Asia/Shanghai")


def test_the_setting_reads_the_environment():
    from shared.config import ENV_VARS, Settings

    assert "SANZHANG_TIMEZONE" in ENV_VARS
    assert Settings.from_env({}).timezone == "Asia/Shanghai"
    assert Settings.from_env({"SANZHANG_TIMEZONE": "Asia/Urumqi"}).timezone == "Asia/Urumqi"


def test_notify_takes_the_process_zone(restore_zone):
    from services.notify.config import NotifySettings

    localtime.configure("Asia/Urumqi")
    assert NotifySettings.from_env({}).timezone == ZoneInfo("Asia/Urumqi")


# -- durations -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["2wd", " 0.25wd ", "36h", "90s", "30m", "7d"])
def test_duration_pattern_accepts_what_duration_parses(text):
    import re

    assert re.match(workdays.DURATION_PATTERN, text)
    workdays.Duration.parse(text)


@pytest.mark.parametrize("text", ["2w", "h", "-1d", "1.d", "wd2"])
def test_duration_pattern_refuses_what_duration_refuses(text):
    import re

    assert not re.match(workdays.DURATION_PATTERN, text)
    with pytest.raises(ValueError):
        workdays.Duration.parse(text)


def test_demo_township():
    assert demo.DEMO_TOWNSHIP == "430382100" and demo.DEMO_TOWNSHIP_NAME == "清溪镇"
