"""Shared helpers for the notify tests (no tests here): a NotifyService on SQLite with an injected
clock, a directory of leads, events, and a scripted in-process channel."""
from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import datetime, timezone

from services.notify.channels import (
    OutboundMessage, PermanentSendError, RetryableSendError, SendResult, build_channels,
)
from services.notify.config import NotifySettings
from services.notify.service import NotifyService
from shared.clock import FakeClock
from shared.events import load_event, make_event
from shared.storage.sqlite import SQLiteStore
from shared.sweeper import DueSweeper
from tests.support.fakes import no_proxy_opener

TOWNSHIP = "430382100"
UTC = timezone.utc
MONDAY_9AM = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)      # 09:00 in Shanghai
MONDAY_11PM = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)    # 23:00 in Shanghai

# A small directory: 韶山村 / 一片 / 一组 / 第1邻, a vacant village committee, the township's staff.
LEADS = [
    {"unit_id": "u-nb1", "level": "neighbourhood", "unit_name": "第1邻", "name": "周桂香",
     "phone": "13873100001", "wecom_id": "zhouguixiang", "parent_id": "u-grp1"},
    {"unit_id": "u-nb2", "level": "neighbourhood", "unit_name": "第2邻", "name": "李春生",
     "phone": "13873100002", "wecom_id": "lichunsheng", "parent_id": "u-grp1"},
    {"unit_id": "u-grp1", "level": "group", "unit_name": "一组", "name": "彭立新",
     "phone": "13873100003", "wecom_id": "penglixin", "parent_id": "u-area1"},
    {"unit_id": "u-area1", "level": "area", "unit_name": "一片", "name": "毛建华",
     "phone": "13873100004", "wecom_id": "maojianhua", "parent_id": "u-vil1"},
    {"unit_id": "t-" + TOWNSHIP, "level": "township", "unit_name": "清溪镇", "name": "镇综治中心",
     "phone": "13873100009", "wecom_id": "zongzhi", "parent_id": None},
]
BY_UNIT = {lead["unit_id"]: lead for lead in LEADS}
RESIDENT_PHONE = "13912345678"


def assignee(unit_id: str) -> dict:
    lead = BY_UNIT[unit_id]
    return {"level": lead["level"], "unit_id": unit_id, "unit_name": lead["unit_name"],
            "lead_id": unit_id, "lead_name": lead["name"], "lead_phone_masked": "138****0000"}


def case_payload(unit_id: str = "u-nb1", **over) -> dict:
    base = {"case_id": "c" * 32, "report_id": "r" * 32, "tracking_no": "7KQ4M2XC", "category": "road",
            "tier": "general", "status": "assigned", "assignee": assignee(unit_id),
            "due_at": "2026-11-04T09:30:00.000000Z", "promise_due": "2026-11-04T09:30:00.000000Z",
            "urgent": False, "summary": "村口路面塌陷一个坑，晚上看不见"}
    base.update(over)
    return base


def event(type_: str, payload: dict, *, at: datetime = MONDAY_9AM, township: str = TOWNSHIP) -> dict:
    """As a consumer receives it: validated through the shared envelope and payload schemas."""
    raw = make_event(type_, township, payload, at=at, correlation_id=payload.get("report_id"))
    return load_event(json.loads(json.dumps(raw)))


class Scripted:
    """An in-process channel whose outcomes a test scripts: "ok", "retry", "timeout", "fail",
    "delivered", or an exception instance. Records every message it was asked to send."""

    def __init__(self, name: str, *needs: str, delay: float = 0.0):
        self.name = name
        self.needs = needs or ("phone",)
        self.script: list = []
        self.sent: list[OutboundMessage] = []
        self.delay = delay
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def can_reach(self, msg: OutboundMessage) -> bool:
        fields = {"phone": msg.phone, "wecom": msg.wecom_user, "openid": msg.openid}
        return any(fields[n] for n in self.needs)

    def send(self, msg: OutboundMessage) -> SendResult:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            outcome = self.script.pop(0) if self.script else "ok"
            self.sent.append(msg)
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "retry":
            raise RetryableSendError(self.name, "Throttling.User", "flow control")
        if outcome == "timeout":
            raise RetryableSendError(self.name, "timeout", "no answer in time")
        if outcome == "fail":
            raise PermanentSendError(self.name, "isv.MOBILE_NUMBER_ILLEGAL", "bad number")
        return SendResult(provider_message_id=f"{self.name}-{next(self._ids)}",
                          status="delivered" if outcome == "delivered" else "sent")


class Harness:
    """A NotifyService of its own: FakeClock, channels from an environment (the real adapters, pointed
    at fakes) plus any scripted ones, on a SQLite file, or on `store` when given (the unit tier passes
    the in-memory fake, tests/support/fakes/memory_store.py)."""

    def __init__(self, tmp_path, env: dict | None = None, *, scripted: list[Scripted] = (),
                 start: datetime = MONDAY_9AM, contacts: bool = True, store=None):
        self.clock = FakeClock(start)
        self.store = store if store is not None else SQLiteStore(tmp_path / "notify.db")
        self.env = dict(env or {})
        self.settings = NotifySettings.from_env(self.env)
        self.channels = build_channels(self.env, now=self.clock.now, opener=no_proxy_opener())
        for channel in scripted:
            self.channels[channel.name] = channel
        self.service = NotifyService(self.store, self.channels, self.clock, self.settings)
        self.sweeper = DueSweeper("notify-test", self.service.deliveries, "due_at", self.service.on_due, self.clock)
        if contacts:
            self.handle(event("org.contacts_changed", {"leads": LEADS}))

    def handle(self, ev: dict) -> None:
        handler = self.service.handlers().get(ev["type"])
        if handler:
            handler(ev)

    def report(self, report_id: str = "r" * 32, phone: str | None = RESIDENT_PHONE, openid: str | None = None):
        payload = {"report_id": report_id, "tracking_no": "7KQ4M2XC", "category": "road", "description": "路面塌陷",
                   "channel": "mini_program", "reporter_phone": phone, "reporter_openid": openid,
                   "submitted_at": "2026-11-02T01:00:00.000000Z"}
        self.handle(event("report.submitted", payload))

    def deliveries(self, **where) -> list[dict]:
        """Every delivery (oldest first) whose fields equal `where`, filtered here, not by an index."""
        docs = self.service.deliveries.find({}, sort=[("created_at", 1), ("notice_slot", 1)])
        return [d for d in docs if all(d.get(k) == v for k, v in where.items())]

    def one(self, **where) -> dict:
        found = self.deliveries(**where)
        assert len(found) == 1, found
        return found[0]

    def sweep(self) -> int:
        return self.sweeper.run_once()


def routes(**kinds) -> str:
    return json.dumps({"default": kinds})
