"""回电: the resident's phone number, for the lead whose post holds the case, so they can call back.

The decision (docs/pages.md, 谁能看到谁的电话): a lead needs the resident's number to call back;
nobody else on the pages does. dispatch never stores the number (it travels sealed in the report's
event), so the lead's case page links here, to intake, which keeps it. Only a lead whose post holds
the case now (or resolved it) gets the number; any other lead or role gets what a stranger gets.
Every showing is recorded on the report (who, which post, when — never the number), so the township
can see who looked.
"""
from __future__ import annotations

from shared.clock import iso

from .loop_errors import Forbidden, NotVisible
from .residents import Caller

KEEP_VIEWS = 50   # the latest showings kept on the report


class ResidentContact:
    """Part of ResidentLoop (services/intake/loop.py), which holds the stores and the clock."""

    def contact_for_holder(self, ref: str, caller: Caller) -> dict:
        report = self.find(ref)
        if report is None or caller.kind not in ("lead", "staff") or not caller.sees(report["township"]):
            raise NotVisible("未找到该诉求")
        handler = report.get("handler") or {}
        if caller.kind != "lead" or not caller.principal.unit_id or handler.get("unit_id") != caller.principal.unit_id:
            raise Forbidden("只有正在办理该诉求的三长可以查看群众的联系电话")
        if report.get("reporter_phone"):
            self._record_view(report["_id"], caller)
        return {"report": report, "phone": report.get("reporter_phone"), "name": report.get("reporter_name")}

    def _record_view(self, report_id: str, caller: Caller) -> None:
        view = {"by": caller.name, "unit_id": caller.principal.unit_id,
                "at": iso(self.clock.now())}

        def note(doc: dict):
            doc["contact_views"] = (doc.get("contact_views") or [])[-(KEEP_VIEWS - 1):] + [view]
            return ()

        self.reports.mutate(report_id, note)
