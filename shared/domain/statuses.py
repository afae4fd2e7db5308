"""The statuses of a case (dispatch) and of a department's part of it (escalation).

Open means someone holds it and its clocks run; closed is final for that holder."""
from __future__ import annotations

OPEN_STATUSES = ("assigned", "accepted")
CLOSED_STATUSES = ("resolved", "referred", "merged")


def is_open(status: str | None) -> bool:
    return status in OPEN_STATUSES
