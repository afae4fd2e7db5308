"""docs/configuration.md is what tools/gen_config_docs.py prints, and the settings list is the
one Settings.from_env reads. Pure: no broker, no server, no files but the page."""
from __future__ import annotations

from pathlib import Path

from shared.config import DEFAULTS, ENV_VARS, SETTINGS, Settings
from tools.gen_config_docs import PAGE, render

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_page_is_what_the_generator_prints():
    assert PAGE == ROOT / "docs" / "configuration.md"
    assert PAGE.read_text(encoding="utf-8") == render(), \
        "docs/configuration.md is stale: python -m tools.gen_config_docs > docs/configuration.md"


def test_every_setting_is_on_the_page_once():
    page = render()
    for name in ENV_VARS:
        assert page.count(f"| `{name}` |") == 1, name


def test_settings_are_listed_once_each():
    names = [s.env for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(n.startswith("SANZHANG_") for n in names)


def test_declared_defaults_are_the_defaults_the_code_applies():
    """Setting each variable to its declared default changes nothing, and leaving everything
    unset gives the dataclass's own defaults: the list and the reader cannot disagree."""
    unset = Settings.from_env({})
    explicit = {name: value for name, value in DEFAULTS.items() if value is not None}
    assert _without_extra(Settings.from_env(explicit)) == _without_extra(unset)
    assert _without_extra(unset) == _without_extra(Settings())


def test_an_empty_value_means_the_default():
    empty = {name: "" for name in ENV_VARS}
    assert _without_extra(Settings.from_env(empty)) == _without_extra(Settings())


def test_a_set_value_wins_over_the_default():
    got = Settings.from_env({"SANZHANG_PORT": "9000", "SANZHANG_SQLITE_SYNC": "full", "SANZHANG_DEMO": "1"})
    assert (got.port, got.sqlite_sync, got.demo) == (9000, "FULL", True)


def _without_extra(settings: Settings) -> dict:
    return {k: v for k, v in vars(settings).items() if k != "extra"}
