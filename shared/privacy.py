"""Phone numbers never reach a log in full: the filter every log handler carries.

The phone rules themselves (normalise, validate, mask, find in text) live in shared.domain.phones."""
from __future__ import annotations

import logging

from .domain.phones import mask_text


class PhoneMaskingFilter(logging.Filter):
    """Applied to every handler, so no code path can put a full number in a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                record.msg = record.getMessage()
            except Exception:  # a broken format string is still better logged than lost
                record.msg = str(record.msg)
            record.args = None
        record.msg = mask_text(str(record.msg))
        return True
