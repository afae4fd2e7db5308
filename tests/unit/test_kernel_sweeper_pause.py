"""DueSweeper(at_due=True): the next sweep comes at the earliest due time when that is before the
next poll, so a burst due at one instant starts then (issue 16). Pure, in-memory store."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.clock import FakeClock, iso
from shared.storage import Index
from shared.sweeper import MIN_PAUSE, DueSweeper
from tests.support.fakes.memory_store import MemoryStore

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)


def sweeper(due_in: float | None, at_due: bool = True) -> DueSweeper:
    things = MemoryStore().collection("things", [Index.on("due")])
    things.insert({"_id": "t1", "due": iso(NOW + timedelta(seconds=due_in)) if due_in is not None else None})
    return DueSweeper("things", things, "due", lambda doc: None, FakeClock(NOW), poll=1.0, at_due=at_due)


@pytest.mark.parametrize("due_in, pause", [(0.3, 0.3), (5.0, 1.0), (None, 1.0), (-2.0, MIN_PAUSE)])
def test_the_sweep_after_comes_at_the_earliest_due_time_within_the_poll(due_in, pause):
    assert sweeper(due_in)._pause() == pytest.approx(pause)


def test_without_at_due_the_sweep_waits_the_poll():
    assert sweeper(0.3, at_due=False)._pause() == 1.0
