"""The 201 answer to a new report is written directly (schemas.created_body) for speed; it must be
exactly what the documented schema, ReportCreated, makes of the same report."""
from __future__ import annotations

from datetime import datetime, timezone

from services.intake.reports import STATUS_NAMES, new_report
from services.intake.schemas import ReportCreated, created_body

AT = datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc)
BODY = {"township": "430382100", "address": "韶山村一组1号", "category": "environment", "channel": "mini_program",
        "description": "门口路灯坏了一个星期", "reporter_phone": "13800000001"}


def _both(report: dict, token: str | None) -> tuple[dict, dict]:
    text = STATUS_NAMES[report["status"]]
    return created_body(report, text, token), ReportCreated().dump({**report, "status_text": text, "resident_token": token})


def test_a_new_report_with_likely_duplicates():
    report, _ = new_report(BODY, AT)
    report["possible_duplicates"] = [
        {"tracking_no": "A1B2C3D4", "description": "路灯坏了", "status": "assigned", "submitted_at": "2026-11-30T08:00:00Z"},
        {"tracking_no": "E5F6G7H8", "description": "路灯", "status": "submitted", "submitted_at": None, "distance_m": 120}]
    mine, documented = _both(report, "szr1.token")
    assert mine == documented
    assert "distance_m" not in mine["possible_duplicates"][0] and mine["answer"] is None


def test_an_instantly_answered_report_and_no_token():
    report, _ = new_report(BODY, AT)
    report.update(status="answered", tier="instant", answer={
        "entry_code": "K01", "question": "医保怎么交", "answer": "到村委会办理", "category": None, "confidence": 1,
        "declined_at": None, "declined_note": "not in the schema"})
    mine, documented = _both(report, None)
    assert mine == documented and mine["answer"]["confidence"] == 1.0 and "declined_note" not in mine["answer"]
