"""shared.faults: the once-per-run crash at a point's Nth hit, which makes every fault run crash at
each named point whatever the timing (tests/e2e/test_faults_embedded.py)."""
from __future__ import annotations

import importlib

import pytest


@pytest.fixture
def faults(monkeypatch, tmp_path):
    monkeypatch.setenv("SANZHANG_FAULT_POINTS", "published,stored")
    monkeypatch.setenv("SANZHANG_FAULT_RATE", "0")
    monkeypatch.setenv("SANZHANG_FAULT_ONCE", "published=3,nonsense=1")
    monkeypatch.setenv("SANZHANG_FAULT_ONCE_DIR", str(tmp_path))
    import shared.faults as module
    module = importlib.reload(module)
    exits: list[int] = []
    monkeypatch.setattr(module.os, "_exit", exits.append)   # recorded instead of ending the test run
    monkeypatch.setattr(module.logging, "shutdown", lambda: None)   # and the run's logging left as it is
    yield module, exits
    monkeypatch.undo()
    importlib.reload(module)


def test_the_nth_hit_crashes_once_per_run_even_in_a_fresh_process(faults, tmp_path):
    module, exits = faults
    for _ in range(10):
        module.hit("published")
        module.hit("stored")          # named, no once: rate 0, never
    assert exits == [70]              # the third hit of published, and only that
    assert [p.name for p in tmp_path.iterdir()] == ["fault-once-published"]
    module._hits.clear()              # a restarted worker counts again, finds the marker, goes on
    for _ in range(10):
        module.hit("published")
    assert exits == [70]


def test_unknown_points_in_the_once_list_are_ignored(faults):
    module, _ = faults
    assert module._once_at == {"published": 3}
