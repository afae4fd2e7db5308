"""The privacy scan's rules on lines and error bodies, without a system."""
from __future__ import annotations

import logging

from tests.support.log_scan import Findings, ScanHandler, scan_error_body


PHONE = "13912345678"


class _Response:
    def __init__(self, status: int, text: str):
        self.status_code, self.direct_passthrough, self._text = status, False, text

    def get_data(self, as_text=False):
        return self._text


def test_the_scan_finds_a_number_in_an_error_body_and_ignores_successes():
    findings = Findings()
    scan_error_body(findings, _Response(200, f'{{"reporter_phone": "{PHONE}"}}'))    # staff's follow-up list
    scan_error_body(findings, _Response(422, '{"errors": {"phone": ["139****5678 格式不正确"]}}'))
    assert findings.found == [] and findings.bodies == 1
    scan_error_body(findings, _Response(500, f"boom {PHONE}"))
    assert [f[0] for f in findings.found] == ["500 body"]


def test_log_lines_are_scanned_as_production_writes_them():
    """The production pipeline (JsonFormatter behind PhoneMaskingFilter) masks arguments, messages
    and tracebacks alike; the record other handlers see is left as it was."""
    findings = Findings()
    handler = ScanHandler(findings)
    log = logging.getLogger("tests.log_scan.probe")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("sent to %s", PHONE)
        try:
            raise ValueError(f"bad number {PHONE}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert findings.lines == 2 and findings.found == []
    findings.scan("log line", f"a line that skipped the filter: {PHONE}")
    assert len(findings.found) == 1
