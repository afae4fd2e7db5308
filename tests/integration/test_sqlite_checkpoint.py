"""The write-ahead log is copied into the database file by a thread of the writing process, not by
a writer inside its commit (shared/storage/sqlite_checkpoint.py)."""
from __future__ import annotations

import os
import select
import signal

import pytest

from shared.storage.sqlite import SQLiteStore
from shared.storage.sqlite_checkpoint import BACKSTOP_PAGES, CHECKPOINTER, KEEP_OPEN, Checkpointer
from tests.support.cluster import wait_until


@pytest.fixture(autouse=True)
def started():
    CHECKPOINTER.start()   # as Runtime.start does in each service process


def test_a_process_that_did_not_start_it_checkpoints_as_sqlite_always_did(tmp_path):
    fresh = Checkpointer()
    assert not fresh.running() and fresh.autocheckpoint_pages() == 1000
    fresh.nudge(str(tmp_path / "x.db"))   # nothing to do with it: no thread, nothing queued
    assert not fresh._due


def test_a_writers_commit_leaves_the_copy_to_the_thread(tmp_path):
    store = SQLiteStore(tmp_path / "a.db")
    reports = store.collection("reports")
    assert store.connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    before = CHECKPOINTER.checkpoints
    for i in range(300):   # ~1,000 pages of log: past SQLite's default, short of the backstop
        reports.insert({"_id": f"r{i}", "text": "路灯坏了" * 300})
    wal = tmp_path / "a.db-wal"
    assert wal.stat().st_size > 1000 * 4096 * 0.9
    wait_until(lambda: CHECKPOINTER.checkpoints > before, 10, "a checkpoint", 0.02)
    # The rows are in the database file itself: it grew to hold them.
    wait_until(lambda: os.path.getsize(tmp_path / "a.db") > 300 * 3600, 10, "the rows in the file", 0.02)
    store.close()


def test_every_write_is_still_read_back_and_kept_across_a_reopen(tmp_path):
    store = SQLiteStore(tmp_path / "b.db")
    col = store.collection("c")
    before = CHECKPOINTER.checkpoints
    for i in range(200):
        col.insert({"_id": str(i), "n": i})
        col.replace({"_id": str(i), "n": i, "twice": True}, 1)
    wait_until(lambda: CHECKPOINTER.checkpoints > before, 10, "a checkpoint", 0.02)   # copied while the writes went on
    store.close()
    again = SQLiteStore(tmp_path / "b.db").collection("c")
    assert again.count() == 200 and again.get("199") == {"_id": "199", "n": 199, "twice": True, "version": 2}


def test_a_vanished_file_is_skipped_and_never_created(tmp_path):
    checkpointer = Checkpointer(settle=0)
    gone = tmp_path / "gone" / "x.db"
    checkpointer.checkpoint(str(gone))
    assert not gone.exists() and not gone.parent.exists()
    assert checkpointer.checkpoints == 0


def test_the_thread_keeps_few_connections(tmp_path):
    checkpointer = Checkpointer(settle=0)
    paths = []
    for i in range(KEEP_OPEN + 4):
        store = SQLiteStore(tmp_path / f"{i}.db")
        store.collection("c").insert({"_id": "1"})
        store.close()
        paths.append(str(tmp_path / f"{i}.db"))
    for path in paths:
        checkpointer.checkpoint(path)
    assert checkpointer.checkpoints == len(paths)
    assert list(checkpointer._open) == paths[-KEEP_OPEN:]   # the least recently used were closed


def test_a_forked_child_starts_its_own_thread(tmp_path):
    store = SQLiteStore(tmp_path / "f.db")
    store.collection("c").insert({"_id": "parent"})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: its writes are copied by a thread of its own
        try:
            assert not CHECKPOINTER.running()   # the parent's thread did not come with the fork
            CHECKPOINTER.start()
            child = SQLiteStore(tmp_path / "f.db")
            before = CHECKPOINTER.checkpoints
            child.collection("c").insert({"_id": "child"})
            wait_until(lambda: CHECKPOINTER.checkpoints > before, 5, "the child's checkpoint", 0.02)
            ok = CHECKPOINTER.running()
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 30)
    answer = os.read(read, 1) if ready else b"timeout"
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert store.collection("c").get("child") is not None
