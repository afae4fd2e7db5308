"""Who hears what: the recipients of each event notify handles (leads, the post above, township
staff, the resident, a department), and the directory of contacts they are found in."""
from __future__ import annotations

from typing import NamedTuple

from shared.domain.ids import township_unit_id
from shared.clock import iso
from shared.domain.ids import short_hash
from shared.domain.levels import POST_TITLES
from shared.domain.reachability import kind_of, reachable_by
from shared.storage import DuplicateKey

from .templates import case_params, department_params

STAFF_TITLE = "镇(街道)工作人员"


class Recipient(NamedTuple):
    recipient_id: str
    role: str
    kind: str                 # lead | resident | staff | department
    name: str | None
    contact: dict             # phone, wecom_id, openid
    # The post the message was meant for when nobody there could be reached: {unit_id, level,
    # unit_name, title, name, label}; the text then starts "原收件人（label）无有效联系方式，转您处理".
    forwarded_from: dict | None = None


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
        posts = event["payload"].get("posts")
        if posts is not None:  # older producers send none: the directory of posts stays as it was
            self._replace_posts(township, posts)

    def _replace_posts(self, township: str, posts: list[dict]) -> None:
        listed = set()
        for post in posts:
            if post.get("unit_id"):
                listed.add(post["unit_id"])
                self.posts.upsert({**post, "_id": post["unit_id"], "township": township})
        for old in self.posts.find({"township": township}):
            if old["_id"] not in listed:
                self.posts.delete(old["_id"])

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
        elif kind == "case.paused":
            # 请补充材料: only a pause that waits for the resident asks them for something.
            if p.get("pause_reason") != "awaiting_resident":
                return
            recipients = self._resident_news(event, township, p["report_id"])
        elif kind == "case.resumed":
            if p.get("actor") not in ("resident", "system"):
                return  # the holder resumed it themselves
            recipients = self._holder(township, assignee, "assignee")
        elif kind == "case.merged":
            reports = p.get("linked_report_ids") or [p["report_id"]]
            recipients = [r for report_id in reports for r in self._resident_news(event, township, report_id)]
        else:
            return
        params = case_params(p, due_local=self._local(p.get("due_at")),
                             promise_local=self._local(p.get("promise_due")))
        params["link"] = self._case_link(p)   # case_links.py: where someone who must act opens the case
        self._notify(event, recipients, params)

    def on_resident_loop_event(self, event: dict) -> None:
        """intake's rating request to a resident; a follow-up call (回访) owed by township staff."""
        p = event["payload"]
        township = event["township"]
        params = case_params(p)
        params["link"] = self._case_link(p)
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
        post = self.posts.get(unit_id)
        if post is not None and role == "previous":
            # News for a holder the case has left (released, or its time ran out): nothing for
            # anyone above to act on, so no climbing; township staff hear of a breach on their own.
            return self._reachable_people(township, post, role, None) or [
                Recipient(unit_id, role, kind_of(post["level"]), _forwarded(post)["name"] or assignee.get("lead_name"),
                          _address({}))]
        if post is not None:
            return self._reach(township, post, role)
        contact = self.contacts.get(unit_id) or {}
        return [Recipient(unit_id, role, "lead", contact.get("name") or assignee.get("lead_name"), _address(contact))]

    def _supervisor(self, township: str, assignee: dict) -> list[Recipient]:
        """The holder of the post above; the township's staff when that post is vacant or unknown."""
        if assignee.get("level") in ("township", "department") or not assignee.get("unit_id"):
            return []
        post = self.posts.get(assignee["unit_id"])
        if post is not None:
            parent = self.posts.get(post["parent_id"]) if post.get("parent_id") else None
            if parent is None or parent.get("level") == "township":
                return self._township_staff(township, "supervisor")
            return self._reach(township, parent, "supervisor")
        own = self.contacts.get(assignee["unit_id"]) or {}
        parent_id = own.get("parent_id")
        parent = self.contacts.get(parent_id) if parent_id else None
        if parent and parent.get("level") != "township" and (parent.get("name") or parent.get("phone")):
            return [Recipient(parent_id, "supervisor", "lead", parent.get("name"), _address(parent))]
        return self._township_staff(township, "supervisor")

    def _township_staff(self, township: str, role: str, forwarded: dict | None = None) -> list[Recipient]:
        """Configured people (SANZHANG_NOTIFY_TOWNSHIP_STAFF), else the township's staff from the
        contacts dispatch imported (the first reachable by precedence), else the township unit's contact."""
        people = self.settings.township_staff.get(township)
        if people:
            return [Recipient(f"staff:{township}:{short_hash(p.get('name', ''), p.get('phone', ''), p.get('wecom_id', ''))}",
                              role, "staff", p.get("name") or STAFF_TITLE, _address(p), forwarded) for p in people]
        unit_id = township_unit_id(township)
        found = self._reachable_people(township, self.posts.get(unit_id), role, forwarded)
        if found:
            return found
        contact = self.contacts.get(unit_id) or {}
        return [Recipient(unit_id, role, "staff", contact.get("name") or STAFF_TITLE, _address(contact), forwarded)]

    # -- a post nobody can be reached at: the next person who can act ---------------------------
    def _reach(self, township: str, post: dict, role: str, forwarded: dict | None = None) -> list[Recipient]:
        """The post's first reachable people; else, climbing 邻 → 组 → 片 → 村 (its duty contacts)
        → 镇 (its staff), the next post where someone is, told whom the message was meant for."""
        while post is not None and post.get("level") != "township":
            found = self._reachable_people(township, post, role, forwarded)
            if found:
                return found
            forwarded = forwarded or _forwarded(post)  # the first post passed by is the one the message was for
            post = self.posts.get(post["parent_id"]) if post.get("parent_id") else None
        return self._township_staff(township, role, forwarded)

    def _reachable_people(self, township: str, post: dict | None, role: str,
                          forwarded: dict | None) -> list[Recipient]:
        """Everyone of the post's first order of precedence the route for its kind can reach."""
        if not post:
            return []
        kind = kind_of(post["level"])
        route = self.settings.routes.for_(township, kind)
        people = [p for p in post.get("people") or [] if reachable_by(route, p)]
        if not people:
            return []
        first = min(p.get("precedence") or 1 for p in people)
        return [Recipient(_person_id(post, p), role, kind, p.get("name"), _address(p), forwarded)
                for p in people if (p.get("precedence") or 1) == first]

    def _resident(self, township: str, report_id: str) -> list[Recipient]:
        known = self.residents.get(report_id) or {}
        handle = known.get("phone") or known.get("openid")
        # One resident, one rate-limit budget, whichever report the news is about.
        rid = f"resident:{short_hash(township, handle)}" if handle else f"resident:{report_id}"
        return [Recipient(rid, "resident", "resident", known.get("name"), _address(known))]


def _person_id(post: dict, person: dict) -> str:
    """A lead is known by the post's unit id (as before contacts existed); a contact by its own id."""
    return f"contact:{person['contact_id']}" if person.get("contact_id") else post["unit_id"]


def _forwarded(post: dict) -> dict:
    """Whom a message was meant for: 第1邻邻长周桂香, 一组组长, 韶山村两委."""
    level, unit_name = post.get("level"), post.get("unit_name") or ""
    title = POST_TITLES.get(level, "")
    name = next((p.get("name") for p in post.get("people") or [] if p.get("name")), None)
    label = f"{unit_name}两委" if level == "village" else f"{unit_name}{title}{name or ''}"
    return {"unit_id": post.get("unit_id"), "level": level, "unit_name": unit_name, "title": title,
            "name": name, "label": label}
