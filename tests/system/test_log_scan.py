"""The privacy scan (tests/support/log_scan.py) runs over the whole suite; these tests show it would see a
leak where one could happen, and that the real traffic of a system it watches stays clean."""
from __future__ import annotations

import json
import logging
import sqlite3

from shared.cli import _load_demo
from shared.events import make_event
from tests.support.runtime import token
from tests.support.log_scan import Findings, ScanHandler, scan_dead_letters, scan_error_body

PHONE = "13912345678"


def test_dead_letters_hold_sealed_numbers_only(system):
    """A report.submitted whose envelope is broken goes to every consumer's dead-letter queue: the
    scan reads those queues, and the phone inside is ciphertext."""
    event = make_event("report.submitted", "430382100", {
        "report_id": "r" * 32, "tracking_no": "ABCD2345", "category": "road", "tier": None,
        "description": "路面塌陷", "channel": "phone", "reporter_phone": PHONE,
        "submitted_at": "2026-11-02T01:00:00.000000Z"}, at=system.clock.now(), correlation_id="r" * 32)
    event["version"] = "not-a-version"                               # undecodable envelope
    assert PHONE not in json.dumps(event)                            # sealed by make_event
    system.bus.append([("report.submitted", event["id"], json.dumps(event))])
    assert system.drain()
    assert len(system.bus.dead("dispatch")) == 1
    findings = Findings()
    scan_dead_letters(findings)
    assert findings.dead_letters >= 1 and findings.found == []

    # What the scan would say about a message in clear text (removed again at once).
    conn = sqlite3.connect(system.bus.path)
    with conn:
        conn.execute("INSERT INTO dead (consumer, message_id, routing_key, body, reason, deliveries, died_at) "
                     "VALUES ('dispatch', 'leak', 'report.submitted', ?, 'test', 1, '')",
                     (f'{{"reporter_phone": "{PHONE}"}}',))
    try:
        scan_dead_letters(findings)
    finally:
        with conn:
            conn.execute("DELETE FROM dead WHERE message_id = 'leak'")
        conn.close()
    assert any("dispatch.dead" in where for where, _, _ in findings.found)


def test_the_session_scan_watches_this_run(system, web, privacy_scan):
    _load_demo(system)
    lines, bodies = privacy_scan.lines, privacy_scan.bodies
    body = {"township": "430382100", "address": "韶山村一组12号", "category": "road", "description": "路面塌陷一个坑",
            "reporter_phone": PHONE, "channel": "mini_program"}
    assert web.post("/api/v1/reports", json=body, headers=token(system, "client")).status_code == 201
    assert web.post("/api/v1/reports", json={**body, "reporter_phone": "1391234"},
                    headers=token(system, "client")).status_code == 422
    assert system.drain()
    assert privacy_scan.lines > lines and privacy_scan.bodies == bodies + 1
    assert privacy_scan.found == []
