"""The simulator's pure parts (sim/): the generated city, the specs' validation, the seeded
arrival process and behaviour draws, the roster workbook, the folder guard and the city sums."""
from __future__ import annotations

import io
import json
import sqlite3
from collections import Counter
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook

from shared.domain.phones import normalise
from sim import actors, arrivals
from sim.city import generate, is_simulated_phone
from sim.spec import PRESETS, SpecError, load_behaviour, load_city, read_json
from sim.summary import combine
from sim.system import MARKER, RefusedFolder, prepare_folder
from sim.workbook import CONTACTS_SHEET, ROSTER_HEADER, roster_xlsx

SHAOSHAN = {"townships": 6, "villages": 48, "areas": 230, "groups": 1040, "neighbourhoods": 2663, "households": 38000}


def test_the_default_city_has_the_articles_counts():
    city = generate(load_city({}), seed=3)
    counts = city.counts()
    assert {k: counts[k] for k in SHAOSHAN} == SHAOSHAN
    assert 0 < counts["vacant_posts"] < 0.05 * (230 + 1040 + 2663)
    assert 0.04 < counts["key_households"] / counts["households"] < 0.08


def test_the_city_is_the_seeds_alone():
    spec = load_city(PRESETS["township"])
    a, b, c = generate(spec, 5), generate(spec, 5), generate(spec, 6)
    assert [h.address for h in a.townships[0].households] == [h.address for h in b.townships[0].households]
    assert [p.lead for p in a.townships[0].posts] == [p.lead for p in b.townships[0].posts]
    assert [p.lead for p in a.townships[0].posts] != [p.lead for p in c.townships[0].posts]


def test_every_phone_is_in_the_simulated_range_and_every_address_unique():
    city = generate(load_city(PRESETS["township"]), 2)
    town = city.townships[0]
    phones = [h.phone for h in town.households] + [p.phone for p in town.posts if p.phone] + [c["电话"] for c in town.contacts]
    assert all(is_simulated_phone(p) and normalise(p) == p for p in phones)
    assert len(set(phones)) == len(phones)
    addresses = [h.address for h in town.households]
    assert len(set(addresses)) == len(addresses)


@pytest.mark.parametrize("doc, field", [
    ({"households": 100}, "households"),
    ({"townships": 0}, "townships"),
    ({"code": "43038"}, "code"),
    ({"colour": "red"}, "colour"),
    ({"key_household_share": 1.5}, "key_household_share"),
])
def test_a_bad_city_names_the_field(doc, field):
    with pytest.raises(SpecError) as exc:
        load_city(doc)
    assert field in exc.value.errors
    assert field in str(exc.value)


def test_a_bad_behaviour_names_the_nested_field():
    levels = json.loads(json.dumps(load_behaviour({})["levels"]))
    levels["group"]["escalate"] = 0.9
    with pytest.raises(SpecError) as exc:
        load_behaviour({"levels": levels})
    assert "escalate" in exc.value.errors["levels"]["group"]["value"]
    with pytest.raises(SpecError) as exc:
        load_behaviour({"categories": {"weather": 1.0}})
    assert "categories" in exc.value.errors
    with pytest.raises(SpecError) as exc:
        load_behaviour({"levels": {"group": levels["group"]}})
    assert "levels" in exc.value.errors


def test_a_file_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "city.json"
    path.write_text("{townships: 1")
    with pytest.raises(SpecError) as exc:
        read_json(path, "city")
    assert "file" in exc.value.errors
    with pytest.raises(SpecError):
        read_json(tmp_path / "missing.json", "city")


def test_arrivals_are_reproducible_and_shaped_by_the_calendar():
    behaviour = load_behaviour({})
    towns = [("430382100", 38000)]
    first = arrivals.reports(9, date(2026, 1, 1), 365, towns, behaviour)
    assert first == arrivals.reports(9, date(2026, 1, 1), 365, towns, behaviour)
    assert first != arrivals.reports(10, date(2026, 1, 1), 365, towns, behaviour)
    assert 1150 < len(first) < 1350  # 1,250 a year for 38,000 households
    per_kind = Counter(arrivals.day_kind(a.at.date()) for a in first)
    days = Counter(arrivals.day_kind(date(2026, 1, 1) + timedelta(days=i)) for i in range(365))
    assert per_kind["holiday"] / days["holiday"] < per_kind["workday"] / days["workday"]
    hours = Counter(a.at.hour for a in first)
    assert hours[10] > 4 * hours[3]
    assert arrivals.day_kind(date(2026, 10, 2)) == "holiday" and arrivals.day_kind(date(2026, 2, 14)) == "workday"


def test_behaviour_draws_are_keyed_not_sequential():
    b = load_behaviour({})
    assert actors.outcome(1, b, "group", "normal", (7, "group", 0)) == actors.outcome(1, b, "group", "normal", (7, "group", 0))
    kinds = Counter(actors.post_kind(1, f"u-{i}", b) for i in range(20000))
    assert abs(kinds["absent"] / 20000 - b["absent_share"]) < 0.01
    assert abs(kinds["slow"] / 20000 - b["slow_share"]) < 0.015
    slow = actors.accept_delay(1, b, "area", "slow", (1,))
    assert slow == actors.accept_delay(1, b, "area", "normal", (1,)) * b["slow_factor"]
    outcomes = Counter(actors.outcome(2, b, "neighbourhood", "normal", (i,))[0] for i in range(10000))
    assert abs(outcomes["resolve"] / 10000 - b["levels"]["neighbourhood"]["resolve"]) < 0.03


def test_the_roster_workbook_has_a_row_per_household_and_the_contacts_sheet():
    town = generate(load_city(PRESETS["township"]), 1).townships[0]
    book = load_workbook(io.BytesIO(roster_xlsx(town)), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert list(rows[0]) == ROSTER_HEADER and len(rows) == 1 + len(town.households)
    contacts = list(book[CONTACTS_SHEET].iter_rows(values_only=True))
    assert len(contacts) == 1 + len(town.contacts) == 1 + 2 * len(town.villages) + 2


def test_a_folder_with_a_real_township_is_refused(tmp_path):
    real = tmp_path / "data"
    real.mkdir()
    with sqlite3.connect(real / "sanzhang_dispatch.db") as conn:
        conn.execute("CREATE TABLE c_townships (_id TEXT PRIMARY KEY, version INTEGER, doc TEXT)")
        conn.execute("INSERT INTO c_townships VALUES ('430382100', 1, '{}')")
    with pytest.raises(RefusedFolder) as exc:
        prepare_folder(real)
    assert "430382100" in str(exc.value)
    assert (real / "sanzhang_dispatch.db").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("x")
    with pytest.raises(RefusedFolder):
        prepare_folder(other)


def test_an_empty_or_simulated_folder_is_used(tmp_path):
    fresh = tmp_path / "sim"
    prepare_folder(fresh)
    assert (fresh / MARKER).exists()
    (fresh / "sim_dispatch.db").write_text("old run")
    prepare_folder(fresh)
    assert not (fresh / "sim_dispatch.db").exists() and (fresh / MARKER).exists()


def test_city_sums_recompute_the_rates_from_the_counts():
    a = {"received": 10, "resolved": 8, "accept_decided": 10, "accepted_on_time": 9, "rated": 4, "satisfied": 3,
         "resolved_within_2d": 5, "resolve_median_s": 100, "resolve_rate": 0.8}
    b = {"received": 30, "resolved": 12, "accept_decided": 20, "accepted_on_time": 10, "rated": 0, "satisfied": 0,
         "resolved_within_2d": 3, "resolve_median_s": 300, "resolve_rate": 0.4}
    total = combine([a, b])
    assert total["received"] == 40 and total["resolve_rate"] == 0.5
    assert total["response_rate"] == round(19 / 30, 4) and total["satisfaction_rate"] == 0.75
    assert total["within_2d_rate"] == 0.2 and total["resolve_median_s"] == 250
    assert combine([a]) == a


def test_the_simulator_imports_no_service():
    """It drives the services through their HTTP API and the bus (shared.runtime composes them),
    never through their packages."""
    from tests.unit.test_kernel_boundaries import _python_files, imported_modules

    found = [(str(path), module) for path in _python_files("sim") for _, module in imported_modules(path)
             if module == "services" or module.startswith("services.")]
    assert list(_python_files("sim")) and found == []
