"""The real system, booted in-process on a folder of its own, moved by a virtual clock.

All four services run as ``sanzhang run`` composes them (shared.runtime), on SQLite and the
embedded bus, but stepped: no thread runs; after every action the simulator relays the stored
events, hands each waiting message to its service and fires every due timer (Runtime.step). Every
action is an HTTP request to the real app (Flask's test client); the simulator watches the events
the relay publishes, as any consumer of the bus would, to learn who holds what.
"""
from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

from shared.auth import Principal
from shared.clock import FakeClock, parse_iso
from shared.config import Settings
from shared.runtime import SERVICES, Runtime

MARKER = ".sanzhang-simulation"


class RefusedFolder(ValueError):
    """The folder is not the simulator's own: it may hold a real deployment's data."""


def prepare_folder(folder: Path) -> None:
    """A simulation runs only in an empty folder or one a previous simulation made (it is wiped).
    A folder holding anything else — a real deployment's databases above all — is refused."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).exists():
            held = real_townships(folder)
            what = f"它保存着真实的镇（街道）数据：{', '.join(held)}" if held else "它不是空文件夹，也不是模拟器创建的"
            raise RefusedFolder(f"拒绝使用数据文件夹 {folder}：{what}。请指定一个新的空文件夹。")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `sanzhang simulate`; wiped by the next run\n")


def real_townships(folder: Path) -> list[str]:
    """Township codes held by any dispatch database in ``folder`` (read-only, best effort)."""
    found = []
    for path in sorted(Path(folder).glob("*_dispatch.db")):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'c_townships'").fetchone():
                    found += [r[0] for r in conn.execute("SELECT _id FROM c_townships")]
        except sqlite3.Error:
            found.append(path.name)
    return found or [p.name for p in Path(folder).glob("*.db")]


class Tap:
    """The relay's publisher, watched: every published event is kept for the simulator's actors,
    then goes on to the bus unchanged."""

    def __init__(self, inner):
        self.inner = inner
        self.events: list[dict] = []
        self.seen: set[str] = set()
        self.counts: dict[str, int] = {}

    def publish(self, events: list[dict]) -> None:
        self.inner.publish(events)
        for e in events:
            if e["id"] not in self.seen:
                self.seen.add(e["id"])
                self.events.append(e)
                self.counts[e["type"]] = self.counts.get(e["type"], 0) + 1

    def take(self) -> list[dict]:
        out, self.events = self.events, []
        return out

    def close(self) -> None:
        self.inner.close()


class SimSystem:
    def __init__(self, folder: Path, start: datetime):
        prepare_folder(folder)
        self.folder = Path(folder)
        self.clock = FakeClock(start)
        self.admin = "sim-admin-" + secrets.token_urlsafe(12)
        settings = Settings(data_dir=self.folder, namespace="sim", secret=secrets.token_urlsafe(32),
                            admin_token=self.admin, sqlite_sync="OFF", max_body=64 * 1024 * 1024,
                            rate_limit=None, log_level="WARNING", extra={})
        self.runtime = Runtime(settings, SERVICES, clock=self.clock, consume=False).start_stepped()
        self.tap = Tap(self.runtime.relay.publisher)
        self.runtime.relay.publisher = self.tap
        from shared.web import create_app

        app = create_app(self.runtime)
        app.testing = True
        self.web = app.test_client()
        self.requests = 0
        self._tokens: dict[tuple, dict] = {}

    # -- credentials ----------------------------------------------------------------------------
    def admin_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.admin}"}

    def headers(self, role: str, township: str, unit_id: str | None = None, name: str | None = None) -> dict:
        key = (role, township, unit_id, name)
        if key not in self._tokens:
            tok = self.runtime.issuer.issue(Principal(role=role, townships=(township,), unit_id=unit_id, name=name))
            self._tokens[key] = {"Authorization": f"Bearer {tok}"}
        return self._tokens[key]

    # -- requests -------------------------------------------------------------------------------
    def call(self, method: str, path: str, headers: dict, ok=(200, 201), **kw):
        """One HTTP request to the real app; an unexpected status is the simulator's bug or the
        system's, never silently skipped (SystemAnswer carries the body)."""
        self.requests += 1
        resp = self.web.open(path, method=method, headers=headers, **kw)
        if resp.status_code not in ok:
            raise SystemAnswer(method, path, resp.status_code, resp.get_data(as_text=True))
        ctype = resp.headers.get("Content-Type", "")
        return resp.get_json() if "json" in ctype else resp.get_data()

    # -- time -----------------------------------------------------------------------------------
    def step(self) -> int:
        return self.runtime.step()

    def next_timer(self) -> datetime | None:
        due = self.runtime.next_due()
        return parse_iso(due) if due else None

    def close(self) -> None:
        self.runtime.stop()


class SystemAnswer(RuntimeError):
    def __init__(self, method, path, status, body):
        self.status, self.body = status, body
        super().__init__(f"{method} {path} → {status}: {body[:500]}")


def dumps(doc) -> str:
    return json.dumps(doc, ensure_ascii=False)
