"""A referred case at the city's departments, as pure functions over one document.

The document (collection ``referrals``, id = the case id) holds what escalation knows of the case
(the case.referred payload and, when it arrived, the resident's report), one *part* per department
working on it (role ``lead`` 牵头 or ``co`` 配合, each with its own clocks), the township's
decisions and an append-only timeline. Every change checks the state (raising Conflict with a
machine code and a Chinese reason), changes the document in place, reschedules its timer and
returns the events it causes; storage, access and idempotency are the caller's business.

Part states::

    lead: assigned ─accept→ accepted ─sign_off→ signed_off
          assigned/accepted ─return→ returned ─township re-routes→ transferred (a new lead part starts)
                                               └township rules it back→ assigned (fresh clocks, no 2nd return)
    co:   assigned ─accept→ accepted ─submit_part→ submitted

Case states: ``assigned`` (a lead holds it), ``returned`` (the lead returned it, the township decides),
``unmatched`` (the matrix names no lead: the township picks one), ``signed_off`` (销号, closed).
"""
from __future__ import annotations

from datetime import datetime

from shared.clock import iso, parse_iso
from shared.domain.categories import CATEGORIES
from shared.domain.ids import derived_id, new_id
from shared.domain.phones import mask as mask_phone
from shared.domain.statuses import OPEN_STATUSES
from shared.domain.workdays import Duration, add
from shared.events import make_event

from .policy import ClockPolicy

LEAD, CO = "lead", "co"
ROLE_TEXT = {LEAD: "牵头部门", CO: "配合部门"}
PART_STATUS_TEXT = {"assigned": "待签收", "accepted": "办理中", "returned": "已退单待镇(街道)处理",
                    "submitted": "已提交配合意见", "signed_off": "已销号", "transferred": "已改派其他部门"}
CASE_STATUS_TEXT = {"assigned": "部门办理中", "returned": "部门退单待处理", "unmatched": "待指定牵头部门",
                    "signed_off": "已销号"}

# status → (timer kind, part field holding its due time); warnings first, they come earlier.
PENDING = {
    "assigned": (("warn_accept", "warn_accept_at"), ("accept", "accept_due"),
                 ("warn_finish", "warn_finish_at"), ("finish", "finish_due")),
    "accepted": (("warn_finish", "warn_finish_at"), ("finish", "finish_due")),
}
DEADLINE_OF = {"warn_accept": "accept_due", "warn_finish": "finish_due"}
SLA_TEXT = {"warn_accept": "市直部门即将超时未签收", "accept": "市直部门超时未签收",
            "warn_finish": "市直部门即将超时未办结", "finish": "市直部门超时未办结"}
MAX_FIRINGS = 16


class Conflict(Exception):
    """The action does not fit the case as it is now (HTTP 409): ``code`` for machines, message for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Hidden(Exception):
    """The caller has no part in this case: for it, the case does not exist (HTTP 404)."""


class Actor:
    def __init__(self, name: str, role: str):
        self.name = name
        self.role = role


# -- shapes ----------------------------------------------------------------------------------------

def assignee_of(dept: dict) -> dict:
    contact = dept.get("contact") or {}
    return {"level": "department", "unit_id": dept["_id"], "unit_name": dept["name"], "lead_id": None,
            "lead_name": contact.get("name"), "lead_phone_masked": mask_phone(contact.get("phone"))}


def new_part(dept: dict, role: str, policy: ClockPolicy, at: datetime, *, serial: int) -> dict:
    part = {"id": f"p{serial}", "department_id": dept["_id"], "department_name": dept["name"], "role": role,
            "contact": dept.get("contact") or None, "status": "assigned", "round": 1, "policy": policy.as_text(),
            "fired": [], "breaches": [], "extensions": [], "return": None, "return_used": False,
            "submission": None, "sign_off": None, "accepted_at": None, "return_until": None}
    start_clocks(part, policy, at)
    return part


def start_clocks(part: dict, policy: ClockPolicy, at: datetime) -> None:
    part["assigned_at"] = iso(at)
    part["accept_due"] = iso(add(at, policy.accept))
    part["finish_due"] = iso(add(at, policy.finish))
    part["warn_accept_at"] = iso(add(at, policy.accept.scaled(policy.warn_at)))
    part["warn_finish_at"] = iso(add(at, policy.finish.scaled(policy.warn_at)))
    part["return_until"] = iso(add(at, policy.return_window)) if part["role"] == LEAD else None
    part["fired"] = []


def current_due(part: dict) -> str | None:
    if part["status"] == "assigned":
        return part["accept_due"]
    if part["status"] == "accepted":
        return part["finish_due"]
    return None


def part_of(doc: dict, dept_id: str) -> dict:
    """The department's part in the case; a department whose part was transferred sees nothing."""
    for part in doc["parts"]:
        if part["department_id"] == dept_id and part["status"] != "transferred":
            return part
    raise Hidden(doc["_id"])


def lead_part(doc: dict) -> dict | None:
    return next((p for p in doc["parts"] if p["role"] == LEAD and p["status"] != "transferred"), None)


def co_parts(doc: dict) -> list[dict]:
    return [p for p in doc["parts"] if p["role"] == CO and p["status"] != "transferred"]


def _entry(doc: dict, at: datetime, entry_type: str, actor: Actor, part: dict | None = None, **fields) -> None:
    entry = {"at": iso(at), "type": entry_type, "actor": actor.name, "actor_role": actor.role}
    if part is not None:
        entry.update(department_id=part["department_id"], department_name=part["department_name"], role=part["role"])
    entry.update({k: v for k, v in fields.items() if v is not None})
    doc["timeline"].append(entry)
    doc["updated_at"] = iso(at)


# -- events ----------------------------------------------------------------------------------------

def department_payload(doc: dict, part: dict, **extra) -> dict:
    contact = part.get("contact") or {}
    payload = {
        "case_id": doc["_id"], "report_id": doc["report_id"], "tracking_no": doc["tracking_no"],
        "department_id": part["department_id"], "department_name": part["department_name"],
        "township": doc["township"], "city": doc["city"], "category": doc["category"], "tier": doc.get("tier"),
        "summary": doc.get("summary"), "urgent": bool(doc.get("urgent")), "role": part["role"],
        "status": part["status"], "due_at": part.get("finish_due"), "accept_due": part.get("accept_due"),
        "contact_name": contact.get("name"), "contact_phone": contact.get("phone"),
        "wecom_id": contact.get("wecom_id"),
    }
    payload.update({k: v for k, v in extra.items() if v is not None})
    return payload


def department_event(event_type: str, doc: dict, part: dict, at: datetime, *, caused_by: str | None = None,
                     key: str = "", **extra) -> dict:
    return make_event(event_type, doc["township"], department_payload(doc, part, **extra), at=at,
                      correlation_id=doc["report_id"], caused_by=caused_by, key=key)


def case_payload(doc: dict, part: dict, **extra) -> dict:
    """The case.* shape (CaseEvent) with the department as the holder, for sla.* events."""
    payload = {"case_id": doc["_id"], "report_id": doc["report_id"], "tracking_no": doc["tracking_no"],
               "category": doc["category"], "tier": doc.get("tier") or "general", "status": part["status"],
               "assignee": assignee_of({"_id": part["department_id"], "name": part["department_name"],
                                        "contact": part.get("contact")}),
               "previous": None, "promise_due": doc.get("promise_due"), "urgent": bool(doc.get("urgent")),
               "summary": doc.get("summary")}
    payload.update({k: v for k, v in extra.items() if v is not None})
    return payload


# -- opening ---------------------------------------------------------------------------------------

def open_referral(event: dict, city: str, plan, policy_for, report: dict | None, at: datetime) -> tuple[dict, list[dict]]:
    """The referral document for a case.referred event, with its parts and their events."""
    p = event["payload"]
    doc = {
        "_id": p["case_id"], "township": event["township"], "city": city, "report_id": p["report_id"],
        "tracking_no": p["tracking_no"], "category": p["category"], "tier": p.get("tier"),
        "urgent": bool(p.get("urgent")), "summary": p.get("summary"), "promise_due": p.get("promise_due"),
        "referral": {"reason": p.get("reason"), "note": p.get("note"), "actor": p.get("actor"),
                     "previous": p.get("previous"), "referred_at": event["occurred_at"], "event_id": event["id"]},
        "report": report, "status": "unmatched", "lead": None, "parts": [], "serial": 0, "timeline": [],
        "resolution": None, "created_at": iso(at), "updated_at": iso(at), "timer": None, "timer_due": None,
    }
    previous = p.get("previous") or {}
    _entry(doc, at, "referred", Actor(p.get("actor") or "system", "township"), reason=p.get("reason"),
           note=p.get("note"), from_unit=previous.get("unit_name"), from_level=previous.get("level"))
    if plan is None:
        _entry(doc, at, "unmatched", Actor("system", "system"),
               reason=f"责任清单中没有「{CATEGORIES.get(doc['category'], doc['category'])}」的牵头部门，待镇(街道)指定")
        schedule(doc)
        return doc, [make_event("department.unmatched", doc["township"],
                                {"case_id": doc["_id"], "report_id": doc["report_id"],
                                 "tracking_no": doc["tracking_no"], "category": doc["category"], "city": city,
                                 "summary": doc.get("summary"), "urgent": doc["urgent"],
                                 "reason": doc["timeline"][-1]["reason"]},
                                at=at, correlation_id=doc["report_id"], caused_by=event["id"], key="unmatched")]
    events = []
    for dept, role in [(plan.lead, LEAD)] + [(d, CO) for d in plan.co]:
        part = _add_part(doc, dept, role, policy_for(dept), at)
        _entry(doc, at, "assigned", Actor("system", "system"), part, due_at=part["finish_due"])
        events.append(department_event("department.assigned", doc, part, at, caused_by=event["id"],
                                       key=part["department_id"]))
    doc["status"] = "assigned"
    schedule(doc)
    return doc, events


def _add_part(doc: dict, dept: dict, role: str, policy: ClockPolicy, at: datetime) -> dict:
    doc["serial"] = doc.get("serial", 0) + 1
    part = new_part(dept, role, policy, at, serial=doc["serial"])
    doc["parts"].append(part)
    if role == LEAD:
        doc["lead"] = dept["_id"]
    return part


# -- checks ----------------------------------------------------------------------------------------

def _require_open(doc: dict) -> None:
    if doc["status"] == "signed_off":
        raise Conflict("case_closed", "工单已销号，不能再操作")


def _require_live(part: dict, action: str) -> None:
    if part["status"] == "returned":
        raise Conflict("return_pending", f"已退单，镇(街道)处理前不能{action}")
    if part["status"] == "submitted":
        raise Conflict("part_submitted", f"已提交配合意见，不能再{action}")
    if part["status"] == "signed_off":
        raise Conflict("case_closed", "工单已销号，不能再操作")
    if part["status"] not in OPEN_STATUSES:  # only a part whose clocks run
        raise Conflict("wrong_state", f"当前状态（{PART_STATUS_TEXT.get(part['status'], part['status'])}）不能{action}")


def _require_accepted(part: dict, action: str) -> None:
    _require_live(part, action)
    if part["status"] != "accepted":
        raise Conflict("not_accepted", f"请先签收再{action}")


# -- a department's actions ------------------------------------------------------------------------

def accept(doc: dict, part: dict, at: datetime, actor: Actor, note: str | None = None) -> list[dict]:
    _require_open(doc)
    if part["status"] == "accepted":
        raise Conflict("already_accepted", "已签收，不能重复签收")
    _require_live(part, "签收")
    part["status"] = "accepted"
    part["accepted_at"] = iso(at)
    _entry(doc, at, "accepted", actor, part, note=note)
    schedule(doc)
    return [department_event("department.accepted", doc, part, at, actor=actor.name, note=note)]


def progress(doc: dict, part: dict, at: datetime, actor: Actor, note: str) -> list[dict]:
    _require_open(doc)
    _require_accepted(part, "填报进展")
    _entry(doc, at, "progress", actor, part, note=note)
    return [department_event("department.progress", doc, part, at, actor=actor.name, note=note)]


def request_extension(doc: dict, part: dict, at: datetime, actor: Actor, working_days: int, reason: str) -> list[dict]:
    _require_open(doc)
    _require_live(part, "申请延期")
    if any(e["status"] == "pending" for e in part["extensions"]):
        raise Conflict("extension_pending", "已有一项延期申请待镇(街道)审批")
    extension = {"id": "x" + new_id()[:10], "working_days": working_days, "reason": reason, "status": "pending",
                 "requested_at": iso(at), "requested_by": actor.name, "finish_due_before": part["finish_due"],
                 "decided_at": None, "decided_by": None, "note": None, "finish_due_after": None}
    part["extensions"].append(extension)
    _entry(doc, at, "extension_requested", actor, part, reason=reason, working_days=working_days,
           extension_id=extension["id"])
    return [department_event("department.extension_requested", doc, part, at, actor=actor.name, reason=reason,
                             working_days=working_days, extension_id=extension["id"])]


def return_case(doc: dict, part: dict, at: datetime, actor: Actor, reason: str, evidence: list[str]) -> list[dict]:
    _require_open(doc)
    if part["role"] != LEAD:
        raise Conflict("co_cannot_return", "配合部门不能退单；如有异议请联系牵头部门或镇(街道)")
    _require_live(part, "退单")
    if part.get("return_used"):
        raise Conflict("return_used", "镇(街道)已裁定由本部门办理，不能再次退单")
    if part["return_until"] and iso(at) > part["return_until"]:
        raise Conflict("return_window_closed", f"已超过退单时限（{part['return_until']}），请办理或申请延期")
    for ext in part["extensions"]:
        if ext["status"] == "pending":
            ext.update(status="closed", decided_at=iso(at), note="部门已退单")
    part["status"] = "returned"
    part["return"] = {"reason": reason, "evidence": list(evidence), "at": iso(at), "by": actor.name,
                      "outcome": "pending", "decided_at": None, "decided_by": None, "ruling": None}
    doc["status"] = "returned"
    _entry(doc, at, "returned", actor, part, reason=reason, evidence=list(evidence))
    schedule(doc)
    payload = {"case_id": doc["_id"], "report_id": doc["report_id"], "tracking_no": doc["tracking_no"],
               "category": doc["category"], "department_id": part["department_id"],
               "department_name": part["department_name"], "reason": reason, "evidence": list(evidence),
               "actor": actor.name, "urgent": bool(doc.get("urgent"))}
    return [make_event("case.returned", doc["township"], payload, at=at, correlation_id=doc["report_id"])]


def submit_part(doc: dict, part: dict, at: datetime, actor: Actor, note: str, attachments: list[str]) -> list[dict]:
    _require_open(doc)
    if part["role"] != CO:
        raise Conflict("not_co", "只有配合部门提交配合意见；牵头部门请销号")
    if part["status"] == "submitted":
        raise Conflict("part_submitted", "已提交配合意见，不能重复提交")
    _require_accepted(part, "提交配合意见")
    part["status"] = "submitted"
    part["submission"] = {"note": note, "attachments": list(attachments), "at": iso(at), "by": actor.name}
    _entry(doc, at, "part_submitted", actor, part, note=note, attachments=list(attachments))
    schedule(doc)
    lead = lead_part(doc)
    return [department_event("department.part_submitted", doc, part, at, actor=actor.name, note=note,
                             attachments=list(attachments),
                             lead_department_id=lead["department_id"] if lead else None,
                             lead_department_name=lead["department_name"] if lead else None)]


def sign_off(doc: dict, part: dict, at: datetime, actor: Actor, resolution: str, attachments: list[str]) -> list[dict]:
    _require_open(doc)
    if part["role"] != LEAD:
        raise Conflict("not_lead", "只有牵头部门可以销号；配合部门请提交配合意见")
    _require_accepted(part, "销号")
    waiting = [p["department_name"] for p in co_parts(doc) if p["status"] != "submitted"]
    if waiting:
        raise Conflict("co_parts_pending", "配合部门尚未提交配合意见：" + "、".join(waiting))
    part["status"] = "signed_off"
    part["sign_off"] = {"resolution": resolution, "attachments": list(attachments), "at": iso(at), "by": actor.name}
    for p in doc["parts"]:
        for ext in p["extensions"]:
            if ext["status"] == "pending":
                ext.update(status="closed", decided_at=iso(at), note="工单已销号")
    doc["status"] = "signed_off"
    doc["resolution"] = {"department_id": part["department_id"], "department_name": part["department_name"],
                         "text": resolution, "attachments": list(attachments), "at": iso(at),
                         "co_parts": [{"department_id": p["department_id"], "department_name": p["department_name"],
                                       "note": p["submission"]["note"]} for p in co_parts(doc)]}
    _entry(doc, at, "signed_off", actor, part, note=resolution, attachments=list(attachments))
    schedule(doc)
    payload = {"case_id": doc["_id"], "report_id": doc["report_id"], "tracking_no": doc["tracking_no"],
               "category": doc["category"], "department_id": part["department_id"],
               "department_name": part["department_name"], "note": resolution, "actor": actor.name,
               "attachments": list(attachments), "urgent": bool(doc.get("urgent"))}
    return [make_event("case.signed_off", doc["township"], payload, at=at, correlation_id=doc["report_id"])]


# -- the township's decisions ----------------------------------------------------------------------

def find_extension(doc: dict, extension_id: str) -> tuple[dict, dict]:
    for part in doc["parts"]:
        for ext in part["extensions"]:
            if ext["id"] == extension_id:
                return part, ext
    raise LookupError(extension_id)


def decide_extension(doc: dict, extension_id: str, approve: bool, at: datetime, actor: Actor, *,
                     working_days: int | None = None, note: str | None = None) -> list[dict]:
    part, ext = find_extension(doc, extension_id)
    if ext["status"] != "pending":
        raise Conflict("extension_decided", f"该延期申请已处理（{ext['status']}）")
    _require_open(doc)
    _require_live(part, "审批延期")
    ext.update(decided_at=iso(at), decided_by=actor.name, note=note)
    if approve:
        days = working_days or ext["working_days"]
        extra = Duration(days, "working_days")
        warn_at = float((part.get("policy") or {}).get("warn_at", 0.75))
        before = parse_iso(part["finish_due"])
        part["finish_due"] = iso(add(before, extra))
        part["warn_finish_at"] = iso(add(before, extra.scaled(warn_at)))
        # The moved clock may warn and breach again; the accept clock is untouched.
        part["fired"] = [k for k in part["fired"] if k not in ("warn_finish", "finish")]
        ext.update(status="approved", granted_working_days=days, finish_due_after=part["finish_due"])
    else:
        ext.update(status="refused")
    _entry(doc, at, "extension_" + ext["status"], actor, part, note=note, extension_id=extension_id,
           due_at=part["finish_due"])
    schedule(doc)
    return [department_event("department.extension_decided", doc, part, at, actor=actor.name, note=note,
                             decision=ext["status"], extension_id=extension_id,
                             working_days=ext.get("granted_working_days"))]


def choose_lead(doc: dict, dept: dict, policy: ClockPolicy, at: datetime, actor: Actor,
                note: str | None = None) -> list[dict]:
    """Re-routes a returned case to another lead, or names the lead of an unmatched one."""
    _require_open(doc)
    if doc["status"] not in ("returned", "unmatched"):
        raise Conflict("not_returned", "只有被退单或未匹配牵头部门的工单可以改派牵头部门")
    old = lead_part(doc)
    if old is not None and old["department_id"] == dept["_id"]:
        raise Conflict("same_department", "不能改派给退单的部门；如应由该部门办理，请作出裁定")
    if any(p["department_id"] == dept["_id"] for p in co_parts(doc)):
        raise Conflict("already_co", f"「{dept['name']}」已是本工单的配合部门")
    events = []
    if old is not None:
        old["status"] = "transferred"
        old["return"].update(outcome="rerouted", decided_at=iso(at), decided_by=actor.name)
        _entry(doc, at, "return_granted", actor, old, note=note)
        events.append(department_event("department.released", doc, old, at, actor=actor.name, note=note,
                                       reason="镇(街道)已同意退单并改派其他部门"))
    part = _add_part(doc, dept, LEAD, policy, at)
    doc["status"] = "assigned"
    _entry(doc, at, "rerouted" if old else "assigned", actor, part, note=note, due_at=part["finish_due"],
           from_department=old["department_name"] if old else None)
    events.append(department_event("department.assigned", doc, part, at, actor=actor.name, note=note))
    schedule(doc)
    return events


def rule_back(doc: dict, at: datetime, actor: Actor, ruling: str) -> list[dict]:
    """The township rules the return unfounded: the department must handle the case, on fresh clocks."""
    _require_open(doc)
    part = lead_part(doc)
    if doc["status"] != "returned" or part is None or part["status"] != "returned":
        raise Conflict("not_returned", "工单未被退单，无需裁定")
    part["return"].update(outcome="overruled", decided_at=iso(at), decided_by=actor.name, ruling=ruling)
    part["return_used"] = True
    part["round"] += 1
    part["status"] = "assigned"
    part["accepted_at"] = None
    start_clocks(part, ClockPolicy.from_text(part["policy"]), at)
    part["return_until"] = None
    doc["status"] = "assigned"
    _entry(doc, at, "return_overruled", actor, part, note=ruling, due_at=part["finish_due"])
    schedule(doc)
    return [department_event("department.return_ruled", doc, part, at, actor=actor.name, note=ruling,
                             reason="镇(街道)裁定由贵单位办理")]


# -- timers ----------------------------------------------------------------------------------------

def next_timer(part: dict) -> tuple[str, str] | None:
    fired = set(part.get("fired") or ())
    pending = [(part[field], kind) for kind, field in PENDING.get(part["status"], ())
               if part.get(field) and kind not in fired]
    return min(pending) if pending else None


def schedule(doc: dict) -> None:
    """Recomputes the document's one timer: the earliest pending deadline of any part."""
    best = None
    for part in doc["parts"]:
        timer = next_timer(part)
        if timer and (best is None or timer[0] < best[0]):
            best = (timer[0], timer[1], part["id"], part["round"])
    doc["timer"] = {"due": best[0], "kind": best[1], "part": best[2], "round": best[3]} if best else None
    doc["timer_due"] = best[0] if best else None


def fire_due(doc: dict, at: datetime, supervisor: dict | None) -> list[dict]:
    """Every deadline due by ``at`` that has not fired, so a late sweep catches up; stale ones are gone.

    A department has no level above it: a miss is reported (sla.* to the township, department.sla_* to
    the department and the city's supervisor) and the clock goes on.
    """
    events: list[dict] = []
    now = iso(at)
    for part in doc["parts"]:
        for _ in range(MAX_FIRINGS):
            timer = next_timer(part)
            if timer is None or timer[0] > now:
                break
            due, kind = timer
            part["fired"].append(kind)
            if kind in DEADLINE_OF and part[DEADLINE_OF[kind]] <= now:
                continue  # its deadline is past too: the breach, fired next, says more
            cause = f"dept-timer:{doc['_id']}:{part['id']}:{part['round']}:{kind}:{due}"
            reason = SLA_TEXT[kind]
            breach = kind not in DEADLINE_OF
            if breach:
                part["breaches"].append({"kind": kind, "due": due, "at": now, "round": part["round"]})
            _entry(doc, at, "breached" if breach else "warned", Actor("system", "system"), part,
                   reason=reason, kind=kind, due=due)
            sup = supervisor or {}
            events.append(make_event("sla.breached" if breach else "sla.warning", doc["township"],
                                     case_payload(doc, part, reason=reason, actor="system", due_at=due),
                                     at=at, correlation_id=doc["report_id"], caused_by=cause, key="case"))
            events.append(department_event("department.sla_breached" if breach else "department.sla_warning",
                                           doc, part, at, caused_by=cause, key="department", reason=reason,
                                           kind=kind.replace("warn_", ""), due_at=due,
                                           supervisor_name=sup.get("name"), supervisor_phone=sup.get("phone"),
                                           supervisor_wecom_id=sup.get("wecom_id")))
    schedule(doc)
    return events


def report_copy(payload: dict, township: str, at: datetime) -> dict:
    """What escalation keeps of a resident's report (for the departments that may get it)."""
    return {"report_id": payload["report_id"], "township": township, "description": payload.get("description"),
            "address": payload.get("address"), "location": payload.get("location"),
            "photos": list(payload.get("photos") or []), "channel": payload.get("channel"),
            "reporter_name": payload.get("reporter_name"), "reporter_phone": payload.get("reporter_phone"),
            "submitted_at": payload.get("submitted_at"), "kept_at": iso(at)}


def delivery_id(event_id: str, dept_id: str) -> str:
    return derived_id("webhook", event_id, dept_id)
