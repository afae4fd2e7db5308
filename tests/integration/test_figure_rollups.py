"""The figure rollups against the scan they replace, on every storage adapter.

Random case histories (received, accepted, escalated by a lead or by a breach, reassigned, paused and
resumed, resolved, reopened, rated, recategorised, moved to another village, supervised) run through
the real repository (CaseFacts: derive and the rollups' hook), the real projector (stints and their
rollups) and the real figure queries, on a fake clock over several Beijing days. After every batch of
changes the figures served from the rollups must equal the scan's for every grouping and for whole-day
ranges of one day, several days, and all; events handled twice, a rebuild, and a rebuild after the
rollups were wiped must change nothing."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from services.dispatch.bootstrap import CASE_INDEXES
from services.dispatch.supervision.facts import CASE_FIGURE_COLUMNS, CASE_FIGURE_INDEXES, CaseFacts
from services.dispatch.supervision.figures import BY, FigureQueries
from services.dispatch.supervision.ledger import Projector
from services.dispatch.supervision.rollups import BUILT, FIRST_BUILD, SETTLE_WINDOW_S, Rollups, day_bounds, settle_due
from shared.clock import FakeClock, iso

TOWNSHIPS = ("430382100", "430382101")
LEVELS = ("neighbourhood", "group", "area", "village", "township")
CATEGORIES = ("environment", "dispute", "hazard", "road", "other")
START = datetime(2026, 11, 1, 15, 30, tzinfo=timezone.utc)  # 23:30 Beijing: cases land on both sides of midnight


class NoOrg:
    def tree(self, township):
        return []

    def township(self, code):
        return None


def new_case(i: int, rnd: random.Random, now: str) -> dict:
    township = rnd.choice(TOWNSHIPS)
    village = f"v-{township}-{rnd.randrange(3)}"
    return {"_id": f"case{i}", "township": township, "village_id": village, "category": rnd.choice(CATEGORIES),
            "created_at": now, "status": "assigned", "step": 1, "level": "neighbourhood",
            "unit_id": f"{village}-n{rnd.randrange(2)}", "assigned_at": now,
            "assignee": {"level": "neighbourhood", "unit_name": "第1邻", "lead_name": rnd.choice(["周", "胡"])},
            "accept_due": iso(START + timedelta(hours=rnd.choice((1, 30, 500)))), "resolve_due": None,
            "timeline": [], "breaches": [], "supervisions": [], "pauses": [], "pause": None}


def move(case: dict, rnd: random.Random, now: str, how: str) -> None:
    """Hands the case to the next level (or another holder at the same one, 改派)."""
    old_step = case["step"]
    level = case["level"] if how == "reassigned" else LEVELS[min(LEVELS.index(case["level"]) + 1, 4)]
    if how == "breach":
        case["breaches"].append({"step": old_step, "kind": rnd.choice(["accept", "resolve"])})
    case["timeline"].append({"type": "reassigned" if how == "reassigned" else "escalated",
                             "actor": "system" if how == "breach" else "lead", "at": now})
    case.update(step=old_step + 1, level=level, unit_id=f"{case['village_id']}-{level}-{rnd.randrange(2)}",
                assignee={"level": level, "unit_name": level, "lead_name": rnd.choice(["文", "彭"])},
                assigned_at=now, status="assigned", accepted_at=None, pause=None,
                accept_due=iso(START + timedelta(hours=rnd.choice((2, 40, 600)))))


def act(case: dict, rnd: random.Random, now: str) -> None:
    """One random change a case can go through, as the fields derive reads them."""
    status = case["status"]
    choice = rnd.random()
    if status == "assigned" and choice < 0.5:
        case.update(status="accepted", accepted_at=now, resolve_due=iso(START + timedelta(hours=rnd.choice((3, 70)))))
    elif status in ("assigned", "accepted") and choice < 0.65:
        move(case, rnd, now, rnd.choice(["lead", "breach", "reassigned"]))
    elif status == "accepted" and not case["pause"] and choice < 0.75:
        case["pause"] = {"since": now, "step": case["step"]}
    elif status == "accepted" and case["pause"] and choice < 0.85:
        case["pauses"].append({"step": case["pause"]["step"], "seconds": float(rnd.randrange(60, 90000))})
        case["pause"] = None
    elif status == "accepted" and choice < 0.95:
        case.update(status="resolved", resolved_at=now, pause=None)
    elif status == "resolved" and choice < 0.4:
        case["rating"] = {"satisfied": rnd.random() < 0.7}
    elif status == "resolved" and choice < 0.55:
        case.update(status="accepted", resolved_at=None, rating=None)  # reopened (不满意)
    elif choice < 0.3:
        case["category"] = rnd.choice(CATEGORIES)  # 调整类别
    elif choice < 0.4:
        case["village_id"] = f"v-{case['township']}-{rnd.randrange(3)}"
    else:
        case["supervisions"].append({"at": now, "id": f"s{rnd.randrange(10**6)}"})


@pytest.fixture
def world(store):
    clock = FakeClock(START)
    cases = CaseFacts(store.collection("cases", CASE_INDEXES + CASE_FIGURE_INDEXES, columns=CASE_FIGURE_COLUMNS),
                      clock)
    projector = Projector(store, cases, ledger=None, rules=None, clock=clock)
    rollups = Rollups(store, cases.collection, projector.stints, clock)
    cases.rollups = projector.rollups = rollups
    rollups.rebuild()   # a new store: built at once, so the reads below use the rollups
    assert rollups.built()
    queries = FigureQueries(cases.collection, projector.stints, NoOrg(), rollups)
    return clock, cases, projector, rollups, queries


def ranges(clock) -> list[tuple[str, str]]:
    first = "2026-11-01"
    days = sorted({first, (clock.now() + timedelta(hours=8)).date().isoformat()})
    whole = (day_bounds(days[0])[0], day_bounds(days[-1])[1])
    one = day_bounds("2026-11-03")
    return [whole, one, (day_bounds("2026-11-01")[0], day_bounds("2026-11-03")[1])]


def canonical(answer: dict) -> tuple:
    rows = sorted(answer["rows"], key=lambda r: repr(sorted((k, str(v)) for k, v in r.items())))
    return answer["total"], rows


def assert_rollups_equal_scan(clock, queries) -> int:
    checked = 0
    now = clock.now()
    for since, until in ranges(clock):
        for township in TOWNSHIPS:
            for by in (None, *BY):
                rolled, scanned = queries.compute(township, since, until, now, by), queries.scan(township, since, until, now, by)
                assert canonical(rolled) == canonical(scanned), (township, since, until, by)
                checked += 1
        scan_city = queries.rollups
        queries.rollups = None
        city = queries.city("430382", since, until, now)
        queries.rollups = scan_city
        assert queries.city("430382", since, until, now) == city
    return checked


@pytest.mark.parametrize("seed", [1, 2])
def test_rollups_answer_what_the_scan_answers_through_random_histories(world, seed):
    clock, cases, projector, rollups, queries = world
    rnd = random.Random(seed)
    ids: list[str] = []
    checked = 0
    for batch in range(6):
        for _ in range(12):
            clock.advance(minutes=rnd.randrange(1, 400))
            if not ids or rnd.random() < 0.3:
                case = cases.add(new_case(len(ids), rnd, iso(clock.now())))
                ids.append(case["_id"])
            else:
                case = cases.mutate(rnd.choice(ids), lambda c: act(c, rnd, iso(clock.now())) or ())
            projector.project(case)
            if rnd.random() < 0.2:
                projector.project(cases.get(rnd.choice(ids)), heal=True)  # an event handled again
        checked += assert_rollups_equal_scan(clock, queries)
    assert checked > 100
    assert any(r["received"] for r in queries.compute(TOWNSHIPS[0], *ranges(clock)[0], clock.now(), "lead")["rows"])
    before = rollups.docs.find()
    assert rollups.rebuild() > 0
    assert sorted((d["_id"], d.get("rows")) for d in rollups.docs.find()) == sorted((d["_id"], d.get("rows")) for d in before)
    for doc in before:  # wiped: a rebuild from the facts alone gives the same figures
        rollups.docs.delete(doc["_id"])
    rollups.rebuild()
    assert_rollups_equal_scan(clock, queries)


def test_a_stale_recomputation_never_overwrites_a_newer_one(world):
    clock, cases, projector, rollups, queries = world
    rnd = random.Random(7)
    case = cases.add(new_case(0, rnd, iso(clock.now())))
    day = "2026-11-01"
    assert rollups.settle({"township": case["township"]}) == 1
    head = rollups.docs.get(f"cases:township:{case['township']}:{day}")
    stale = {**head, "gen": head["gen"] - 1, "rows": []}
    rollups._write_newer({k: v for k, v in stale.items() if k != "version"})
    assert rollups.docs.get(head["_id"])["rows"] == head["rows"]
    village = rollups.docs.get(f"cases:village:{case['township']}:{day}")
    rollups._write_newer({**{k: v for k, v in village.items() if k != "version"}, "rows": []})  # same gen
    assert rollups.docs.get(village["_id"])["rows"] == village["rows"]


def test_a_part_day_range_is_answered_by_the_scan(world):
    clock, cases, projector, rollups, queries = world
    rnd = random.Random(3)
    for i in range(5):
        clock.advance(hours=3)
        projector.project(cases.add(new_case(i, rnd, iso(clock.now()))))
    since, until = iso(START), iso(clock.now())  # not Beijing midnights
    for township in TOWNSHIPS:
        assert queries.compute(township, since, until, clock.now()) == queries.scan(township, since, until, clock.now())


def test_changes_mark_their_days_and_a_read_or_the_sweeper_recomputes_each_once(world):
    clock, cases, projector, rollups, queries = world
    rnd = random.Random(5)
    for i in range(30):  # a burst on one township-day: thirty changes, one mark
        cases.add({**new_case(i, rnd, iso(clock.now())), "township": TOWNSHIPS[0]})
    [mark] = rollups.dirty.find({"due": {"$ne": None}})
    assert (mark["source"], mark["township"], mark["day"]) == ("cases", TOWNSHIPS[0], "2026-11-01")
    assert [d["_id"] for d in rollups.docs.find({})] == [BUILT]  # nothing recomputed yet
    since, until = day_bounds("2026-11-01")
    assert queries.compute(TOWNSHIPS[0], since, until, clock.now())["total"]["received"] == 30  # the read settles
    assert rollups.dirty.find({"due": {"$ne": None}}) == []
    cases.mutate("case0", lambda c: c.update(category="road") or ())
    from shared.sweeper import DueSweeper
    sweeper = DueSweeper("figure-rollups", rollups.dirty, "due", rollups.settle_one, clock)
    assert sweeper.run_once() == 1 and sweeper.run_once() == 0
    rows = {r["category"]: r["received"] for r in queries.compute(TOWNSHIPS[0], since, until, clock.now(), "category")["rows"]}
    assert rows == {r["category"]: r["received"] for r in queries.scan(TOWNSHIPS[0], since, until, clock.now(), "category")["rows"]}


def test_the_sweeper_recomputes_a_busy_day_once_a_window_and_a_read_at_once(world):
    """Marks are due at the end of their SETTLE_WINDOW_S window: a day changing all the time is
    recomputed by the sweeper once a window, not at every poll; a read never waits for the window."""
    from shared.sweeper import DueSweeper
    clock, cases, projector, rollups, queries = world
    sweeper = DueSweeper("figure-rollups", rollups.dirty, "due", rollups.settle_one, clock)
    rnd = random.Random(8)
    since, until = day_bounds("2026-11-01")
    clock.advance(seconds=1)   # 15:30:01, inside the window that ends at 15:30:05
    for i in range(3):
        cases.add({**new_case(i, rnd, iso(clock.now())), "township": TOWNSHIPS[0]})
        clock.advance(seconds=1)
    [mark] = rollups.dirty.find({"due": {"$ne": None}})
    assert mark["due"] == iso(START + timedelta(seconds=SETTLE_WINDOW_S))
    assert sweeper.run_once() == 0   # 15:30:04: the window is still open
    clock.advance(seconds=1)
    assert sweeper.run_once() == 1 and sweeper.run_once() == 0   # 15:30:05: once for the three changes
    assert [d["received"] for d in rollups.read("township", {"township": TOWNSHIPS[0]}, ("2026-11-01", "2026-11-02"),
                                                 ["township"])] == [3]
    clock.advance(seconds=2)
    cases.add({**new_case(3, rnd, iso(clock.now())), "township": TOWNSHIPS[0]})   # 15:30:07
    assert rollups.dirty.find({"due": {"$ne": None}})[0]["due"] == iso(START + timedelta(seconds=2 * SETTLE_WINDOW_S))
    assert sweeper.run_once() == 0
    assert queries.compute(TOWNSHIPS[0], since, until, clock.now())["total"]["received"] == 4   # the read settles now
    assert rollups.dirty.find({"due": {"$ne": None}}) == []


@pytest.mark.parametrize("at, due", [
    ("2026-11-01T15:30:00+00:00", "2026-11-01T15:30:00+00:00"),            # on a boundary: due at once
    ("2026-11-01T15:30:00.000001+00:00", "2026-11-01T15:30:05+00:00"),
    ("2026-11-01T15:30:04.999999+00:00", "2026-11-01T15:30:05+00:00"),
    ("2026-11-01T23:59:58+08:00", "2026-11-02T00:00:00+08:00"),            # across a Beijing midnight
])
def test_a_mark_is_due_at_the_end_of_its_window(at, due):
    assert settle_due(datetime.fromisoformat(at)) == datetime.fromisoformat(due)


def test_a_mark_made_during_a_recomputation_survives_it(world):
    clock, cases, projector, rollups, queries = world
    rnd = random.Random(6)
    cases.add({**new_case(0, rnd, iso(clock.now())), "township": TOWNSHIPS[0]})
    [mark] = rollups.dirty.find({"due": {"$ne": None}})
    real = rollups.recompute

    def recompute_while_a_case_changes(*args):
        real(*args)
        cases.add({**new_case(1, rnd, iso(clock.now())), "township": TOWNSHIPS[0]})  # after the facts were read
    rollups.recompute = recompute_while_a_case_changes
    rollups.settle_one(mark)
    rollups.recompute = real
    assert len(rollups.dirty.find({"due": {"$ne": None}})) == 1  # still marked: the new case is not lost
    since, until = day_bounds("2026-11-01")
    assert queries.compute(TOWNSHIPS[0], since, until, clock.now())["total"]["received"] == 2


def test_an_upgrade_scans_until_the_sweeper_has_built_the_rollups(store):
    """Cases stored by a version without rollups: the figures are scanned (never read from empty
    rollups) until the sweeper's one-off first build ends; then the rollups answer the same."""
    clock = FakeClock(START)
    cases = CaseFacts(store.collection("cases", CASE_INDEXES + CASE_FIGURE_INDEXES, columns=CASE_FIGURE_COLUMNS),
                      clock)
    projector = Projector(store, cases, ledger=None, rules=None, clock=clock)
    rnd = random.Random(9)
    for i in range(12):   # the old version: no rollups attached
        clock.advance(hours=2)
        projector.project(cases.add(new_case(i, rnd, iso(clock.now()))))
    rollups = Rollups(store, cases.collection, projector.stints, clock)
    cases.rollups = projector.rollups = rollups
    queries = FigureQueries(cases.collection, projector.stints, NoOrg(), rollups)
    rollups.ensure_built()
    assert not rollups.built() and rollups.docs.count() == 0
    since, until = day_bounds("2026-11-01")[0], day_bounds("2026-11-02")[1]
    before = queries.compute(TOWNSHIPS[0], since, until, clock.now(), "category")
    assert before == queries.scan(TOWNSHIPS[0], since, until, clock.now(), "category") and before["total"]["received"]
    rollups.ensure_built()   # a second process starting asks again: still one job
    assert len(rollups.dirty.find({"_id": FIRST_BUILD})) == 1
    from shared.sweeper import DueSweeper
    assert DueSweeper("figure-rollups", rollups.dirty, "due", rollups.settle_one, clock).run_once() == 1
    assert rollups.built() and rollups.docs.count() > 1
    assert canonical(queries.compute(TOWNSHIPS[0], since, until, clock.now(), "category")) == canonical(before)
    assert_rollups_equal_scan(clock, queries)

