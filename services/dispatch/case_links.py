"""Short links to a case (shared/domain/links.py): the code → (township, case) table, kept from
dispatch's own case events, and resolving a code for a signed-in person who may see the case."""
from __future__ import annotations

from shared.domain.links import is_link_code, link_code
from shared.storage import DuplicateKey, Index, Store

from .desk import CaseNotVisible

# The events that tell someone to act on a case: a message about them may carry its link.
EVENTS = frozenset({"case.assigned", "case.escalated", "case.reassigned", "case.supervised"})
# Those dispatch consumes for it: a new case's link is written as the case opens (``link_case``, in the
# same transaction), so dispatch does not consume its own case.assigned for it (issue 16).
HANDLED = EVENTS - {"case.assigned"}


class CaseLinks:
    def __init__(self, store: Store, secret: str, desk):
        self.secret = secret
        self.desk = desk
        self.links = store.collection("case_links", [Index.on("township")])

    def handlers(self) -> dict:
        return {kind: self.on_case_event for kind in HANDLED}

    def on_case_event(self, event: dict) -> None:
        self._link(event["township"], event["payload"]["case_id"])

    def link_case(self, case: dict) -> None:
        """A newly opened case (DispatchHandlers.on_open), in the transaction that stores it."""
        self._link(case["township"], case["_id"])

    def _link(self, township: str, case_id: str) -> None:
        """A case's link is derived from its id, so it never changes: inserted once, and a second
        call (a redelivery, a later event of the case) finds it there."""
        try:
            self.links.insert({"_id": link_code(self.secret, case_id), "township": township, "case_id": case_id})
        except DuplicateKey:
            pass

    def open(self, principal, code: str) -> dict | None:
        """The case a link names, for a caller who may see it; None alike for an unknown code and
        for someone else's case (a link reveals nothing)."""
        link = self.links.get(code) if is_link_code(code) else None
        if link is None or not principal.sees(link["township"]):
            return None
        try:
            return self.desk.read(principal, link["case_id"])
        except CaseNotVisible:
            return None
