"""The privacy scan of a whole test run: no full phone number in any log line, error body or dead letter.

``privacy_scan`` is a session-scoped autouse fixture (tests/conftest.py imports it). For the whole
run it

- adds a handler to the root logger that formats every record the way production does
  (``shared.logs.JsonFormatter`` behind ``shared.privacy.PhoneMaskingFilter``, on a copy of the
  record, so other handlers see it untouched) and sets the root logger to INFO, production's
  default level, with the same noisy libraries held at WARNING as ``shared.logs.configure``;
- listens to Flask's ``request_finished`` signal of every app the run builds and reads each
  4xx/5xx body;
- at the end reads every dead table of the embedded bus (``<ns>_bus.db``, its ``<service>.dead``).

Each text is searched for ``shared.domain.phones.FULL_NUMBER``; the run fails at teardown, naming the
test, when one is found. The separately run services of tests/support/cluster.py log to files that the
tests using them scan themselves (test_e2e_processes, test_faults).
"""
from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field

import pytest

from shared.logs import JsonFormatter
from shared.domain.phones import FULL_NUMBER
from shared.privacy import PhoneMaskingFilter

QUIET = ("pika", "kombu", "amqp", "werkzeug")     # as shared.logs.configure


@dataclass
class Findings:
    lines: int = 0
    bodies: int = 0
    dead_letters: int = 0
    found: list[tuple[str, str, str]] = field(default_factory=list)    # (where, test, excerpt)

    def scan(self, where: str, text: str) -> None:
        match = FULL_NUMBER.search(text)
        if match:
            start = max(0, match.start() - 80)
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
            self.found.append((where, test, text[start:match.end() + 80]))

    def report(self) -> str:
        rows = [f"  {where} in {test}: …{excerpt}…" for where, test, excerpt in self.found[:20]]
        more = f"\n  … and {len(self.found) - 20} more" if len(self.found) > 20 else ""
        return f"{len(self.found)} full phone number(s) found:\n" + "\n".join(rows) + more


class ScanHandler(logging.Handler):
    """Formats a copy of each record as production does and scans the line."""

    def __init__(self, findings: Findings):
        super().__init__(level=logging.INFO)
        self.findings = findings
        self.masking = PhoneMaskingFilter()
        self.setFormatter(JsonFormatter("test"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record = copy.copy(record)
            self.masking.filter(record)
            line = self.format(record)
        except Exception:  # a record that cannot be formatted is the logging module's problem
            return
        self.findings.lines += 1
        self.findings.scan("log line", line)


def scan_error_body(findings: Findings, response) -> None:
    if response.status_code < 400 or response.direct_passthrough:
        return
    findings.bodies += 1
    findings.scan(f"{response.status_code} body", response.get_data(as_text=True))


def scan_dead_letters(findings: Findings) -> None:
    """Every message in a dead table of the embedded bus (the SQLite files this run opened)."""
    import sqlite3

    from shared.messaging.embedded_bus import opened_paths

    for path in opened_paths():
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error:
            continue  # its temporary folder is gone
        try:
            rows = conn.execute("SELECT consumer, body, reason FROM dead").fetchall()
        except sqlite3.Error:
            rows = []
        finally:
            conn.close()
        for consumer, body, reason in rows:
            findings.dead_letters += 1
            findings.scan(f"dead letter in {consumer}.dead ({path})", f"{body} {reason}")


RUNS: list[Findings] = []


@pytest.fixture(scope="session", autouse=True)
def privacy_scan():
    from flask import request_finished

    findings = Findings()
    RUNS.append(findings)
    root = logging.getLogger()
    handler = ScanHandler(findings)
    level, quiet = root.level, {name: logging.getLogger(name).level for name in QUIET}
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)

    def on_response(sender, response, **_):
        scan_error_body(findings, response)

    request_finished.connect(on_response)
    try:
        yield findings
    finally:
        request_finished.disconnect(on_response)
        root.removeHandler(handler)
        root.setLevel(level)
        for name, value in quiet.items():
            logging.getLogger(name).setLevel(value)
    scan_dead_letters(findings)
    if findings.found:
        pytest.fail(findings.report(), pytrace=False)


def pytest_terminal_summary(terminalreporter):
    for findings in RUNS:
        terminalreporter.write_line(
            f"privacy scan: {findings.lines} log lines, {findings.bodies} error bodies, "
            f"{findings.dead_letters} dead letters; {len(findings.found)} full phone numbers")
