"""Who hears what: the recipients of each event notify handles (leads, the post above, township
staff, the resident, a department), and the directory of contacts they are found in."""
from __future__ import annotations

from typing import NamedTuple

from shared.domain.ids import township_unit_id
from shared.clock import iso
from shared.domain.ids import short_hash
from shared.storage import DuplicateKey

from .templates import case_params, department_params

STAFF_TITLE = "镇(街道)工作人员"


class Recipient(NamedTuple):
    recipient_id: str
    role: str
    kind: str                 # lead | resident | staff | department
    name: str | None
    contact: dict             # phone, wecom_id, openid


def _address(contact: dict | None) -> dict:
    contact = contact or {}
    return {k: contact.get(k) or None for k in ("phone", "wecom_id", "openid")}


class RecipientRules:
    """Part of NotifyService (services/notify/service.py), which holds the stores, channels and settings.
    The events' handlers choose recipients and hand them to ``_notify`` (deliveries.py)."""

    def on_contacts_changed(self, event: dict) -> None:
        """The township's leads as dispatch knows them now: posts gone from the list are dropped."""
        township = event["township"]
        listed = set()
        for lead in event["payload"]["leads"]:
            if not lead.get("unit_id"):
                continue
            listed.add(lead["unit_id"])
            self.contacts.upsert({**lead, "_id": lead["unit_id"], "township": township})
        for old in self.contacts.find({"township": township}):
            if old["_id"] not in listed:
                self.contacts.delete(old["_id"])

    def on_report_submitted(self, event: dict) -> None:
        """Remembers how to reach the resident who reported, for the case's later news."""
        p = event["payload"]
        # A reporter without a phone (an Open311 client's user) is remembered too, as having no
        # contact: their news is not texted (resident_messages.py), it is on the tracking page and feed.
        try:
            self.residents.insert({"_id": p["report_id"], "township": event["township"],
                                   "phone": p.get("reporter_phone"), "openid": p.get("reporter_openid"),
                                   "name": p.get("reporter_name"), "created_at": iso(self.clock.now())})
        except DuplicateKey:
            pass  # redelivery

    def on_case_event(self, event: dict) -> None:
        p = event["payload"]
        township, kind = event["township"], event["type"]
        assignee = p.get("assignee") or {}
        previous = p.get("previous")
        if kind in ("case.assigned", "case.escalated", "case.supervised", "case.reopened"):
            recipients = self._holder(township, assignee, "assignee")
        elif kind == "case.reassigned":
            recipients = self._holder(township, assignee, "assignee") + \
                (self._holder(township, previous, "previous") if previous else [])
        elif kind == "sla.warning":
            recipients = self._holder(township, assignee, "assignee") + self._supervisor(township, assignee)
        elif kind == "sla.breached":
            # The breach is recorded against the holder who let the time run out (the payload's
            # assignee, or its "previous" when the producer sends the new holder along). The new
            # holder hears it from the case.escalated the breach causes, whose reason names it.
            old = previous or assignee
            recipients = self._holder(township, old, "previous") + self._township_staff(township, "township")
        elif kind == "case.accepted":
            recipients = self._resident_news(event, township, p["report_id"])
        elif kind in ("case.resolved", "case.signed_off"):
            # The resident hears of a resolution once, from intake's report.rating_requested, which
            # carries the rating link and is sent to every report that follows the case.
            return
        elif kind == "case.merged":
            reports = p.get("linked_report_ids") or [p["report_id"]]
            recipients = [r for report_id in reports for r in self._resident_news(event, township, report_id)]
        else:
            return
        params = case_params(p, due_local=self._local(p.get("due_at")),
                             promise_local=self._local(p.get("promise_due")))
        self._notify(event, recipients, params)

    def on_resident_loop_event(self, event: dict) -> None:
        """intake's rating request to a resident; a follow-up call (回访) owed by township staff."""
        p = event["payload"]
        township = event["township"]
        params = case_params(p)
        if event["type"] == "report.rating_requested":
            params["rate_url"] = p.get("rate_url") or "“三长制”小程序（凭查询码）"
            recipients = self._resident_news(event, township, p["report_id"])
        else:
            recipients = self._township_staff(township, "staff")
        self._notify(event, recipients, params)

    def on_department_event(self, event: dict) -> None:
        p = event["payload"]
        dept_id = p["department_id"]
        contact = dict(self.settings.departments.get(dept_id) or {})
        for field, key in (("contact_phone", "phone"), ("wecom_id", "wecom_id"), ("contact_name", "name")):
            if p.get(field):
                contact[key] = p[field]
        recipient = Recipient(f"department:{dept_id}", "department", "department",
                              p.get("department_name") or contact.get("name"), _address(contact))
        params = department_params(p, due_local=self._local(p.get("due_at")))
        # The lead department's assignment is news for the resident too (resident_policy.py); a co-handler's is not.
        resident = self._resident_news(event, event["township"], p["report_id"]) \
            if event["type"] == "department.assigned" and p.get("role") != "co" else []
        self._notify(event, [recipient] + resident, params)

    def _holder(self, township: str, assignee: dict | None, role: str) -> list[Recipient]:
        if not assignee:
            return []
        level = assignee.get("level")
        if level == "department":
            return []  # departments hear through department.* events, which name them
        if level == "township":
            return self._township_staff(township, role)
        unit_id = assignee.get("unit_id")
        if not unit_id:
            return []
        contact = self.contacts.get(unit_id) or {}
        return [Recipient(unit_id, role, "lead", contact.get("name") or assignee.get("lead_name"), _address(contact))]

    def _supervisor(self, township: str, assignee: dict) -> list[Recipient]:
        """The holder of the post above; the township's staff when that post is vacant or unknown."""
        if assignee.get("level") in ("township", "department") or not assignee.get("unit_id"):
            return []
        own = self.contacts.get(assignee["unit_id"]) or {}
        parent_id = own.get("parent_id")
        parent = self.contacts.get(parent_id) if parent_id else None
        if parent and parent.get("level") != "township" and (parent.get("name") or parent.get("phone")):
            return [Recipient(parent_id, "supervisor", "lead", parent.get("name"), _address(parent))]
        return self._township_staff(township, "supervisor")

    def _township_staff(self, township: str, role: str) -> list[Recipient]:
        """Configured people (SANZHANG_NOTIFY_TOWNSHIP_STAFF) or else the township unit's contact."""
        people = self.settings.township_staff.get(township)
        if people:
            return [Recipient(f"staff:{township}:{short_hash(p.get('name', ''), p.get('phone', ''), p.get('wecom_id', ''))}",
                              role, "staff", p.get("name") or STAFF_TITLE, _address(p)) for p in people]
        unit_id = township_unit_id(township)
        contact = self.contacts.get(unit_id) or {}
        return [Recipient(unit_id, role, "staff", contact.get("name") or STAFF_TITLE, _address(contact))]

    def _resident(self, township: str, report_id: str) -> list[Recipient]:
        known = self.residents.get(report_id) or {}
        handle = known.get("phone") or known.get("openid")
        # One resident, one rate-limit budget, whichever report the news is about.
        rid = f"resident:{short_hash(township, handle)}" if handle else f"resident:{report_id}"
        return [Recipient(rid, "resident", "resident", known.get("name"), _address(known))]
