"""The short link a message to someone who must act carries: ``<SANZHANG_NOTIFY_LINK_BASE>/l/<code>``
(shared/domain/links.py), or, without a base, the tracking number as before."""
from __future__ import annotations

from shared.domain.links import link_code


class CaseLinks:
    """Part of NotifyService (services/notify/service.py), which holds the settings and the secret."""

    def _case_link(self, payload: dict) -> str:
        base, case_id = self.settings.link_base, payload.get("case_id")
        if base and case_id and self.secret:
            return f"{base}/l/{link_code(self.secret, case_id)}"
        return f"查询码{payload.get('tracking_no') or ''}"
