"""Reports and the resident's view of them, which intake learns from dispatch's events."""
from __future__ import annotations

from datetime import datetime, timedelta

from shared.clock import iso
from shared.domain.categories import CATEGORIES
from shared.domain.ids import new_id, tracking_number
from shared.domain.levels import POST_TITLES
from shared.events import make_event

STATUS_NAMES = {"submitted": "已受理，正在分派", "assigned": "已派单，等待接单", "accepted": "已接单，正在办理",
                "referred": "已上报市直部门", "resolved": "已办结", "closed": "已办结",
                "answered": "已即时答复（常见问题）", "merged": "已并入其他诉求一并办理"}
# If dispatch has not confirmed a case by then, the report is sent again (idempotent downstream).
RESEND_AFTER = timedelta(minutes=2)


def new_report(body: dict, at: datetime) -> tuple[dict, list[dict]]:
    from .duplicates import address_key, geo_cell

    report_id = new_id()
    location = body.get("location")
    now = iso(at)  # formatted once for the three stamps below
    report = {
        "_id": report_id, "township": body["township"], "tracking_no": tracking_number(),
        "category": body["category"], "description": body["description"], "channel": body["channel"],
        "household_id": body.get("household_id"), "address": body.get("address"),
        "reporter_phone": body.get("reporter_phone"), "reporter_name": body.get("reporter_name"),
        # An Open311 client's (FixMyStreet's) user: kept with the report, never shown nor sent on.
        "reporter_email": body.get("reporter_email"),
        "photos": body.get("photos", []), "location": body.get("location"), "urgent": body.get("urgent", False),
        "submitted_at": now, "updated_at": now, "status": "submitted", "level": None,
        "handler": None, "case_id": None, "expected_at": None, "last_event_at": None,
        "timeline": [{"at": now, "type": "submitted", "text": "您的诉求已受理"}],
        "resend_due": iso(at + RESEND_AFTER),
        # the resident's loop (services/intake/loop.py): instant answer, duplicates, rating, photos
        "tier": None, "answer": None,
        "address_key": address_key(body.get("address")),
        "geo_cell": geo_cell(location["lat"], location["lng"]) if location else None,
        "landing_unit_id": None, "possible_duplicates": [], "linked_to": None, "followers": [],
        "resolution": None, "resolutions": 0, "ratings": [], "rating_due": None, "followup_id": None,
        "uploads": [], "proof_failures": [],
    }
    return report, [submitted_event(report, at)]


def submitted_event(report: dict, at: datetime, attempt: int = 0) -> dict:
    payload = {k: report.get(k) for k in ("category", "description", "channel", "household_id", "address",
                                          "reporter_phone", "reporter_name", "location", "photos", "urgent",
                                          "tracking_no", "submitted_at")}
    # The tier is dispatch's to choose from the category, except for a question the bot answered
    # and the resident sent on ("didn't answer me"): that one is a general case.
    payload.update(report_id=report["_id"], tier=report.get("tier") if report.get("tier") != "instant" else None,
                   # photos uploaded before it was sent on (an instant answer's report) travel with it
                   photos=[*(report.get("photos") or []), *(u["url"] for u in report.get("uploads") or [])])
    # A resend carries the same event id: downstream it is the same event, never a second report.
    return make_event("report.submitted", report["township"], payload, at=at, correlation_id=report["_id"],
                      caused_by=f"report:{report['_id']}")


def summary_text(event_type: str, payload: dict) -> str:
    """The plain Chinese line a resident reads for each step."""
    a = payload["assignee"]
    who = a.get("lead_name") or POST_TITLES.get(a["level"], "")
    where = a.get("unit_name", "")
    texts = {
        "case.assigned": f"已派给{where}{POST_TITLES.get(a['level'], '')}{'' if not a.get('lead_name') else ' ' + who}",
        "case.accepted": f"{where}{POST_TITLES.get(a['level'], '')} {who} 已接单",
        "case.progress": f"办理进展：{payload.get('note') or ''}",
        "case.escalated": f"已上报至{where}{POST_TITLES.get(a['level'], '')}",
        "case.reassigned": f"已改派给{where}{POST_TITLES.get(a['level'], '')}",
        "case.referred": "已上报市直部门办理",
        "case.resolved": f"已办结：{payload.get('note') or ''}",
        "case.supervised": "镇(街道)已督办",
        "case.reopened": f"{payload.get('reason') or '群众不满意，重新办理'}（{where}{POST_TITLES.get(a['level'], '')}）",
        "case.merged": f"已与诉求{payload.get('merged_into_tracking_no') or ''}合并办理，办理进展将同步告知您",
        "case.paused": (f"请您补充材料：{payload.get('note') or ''}" if payload.get("pause_reason") == "awaiting_resident"
                        else f"等待外部事项，暂停计时：{payload.get('note') or ''}"),
        "case.resumed": f"恢复办理（{payload.get('reason') or ''}）",
    }
    return texts.get(event_type, "办理状态已更新").strip("：")


def apply_case_event(report: dict, event: dict) -> None:
    """Folds a case.* event into the resident's view; late-arriving older events only add history."""
    payload = event["payload"]
    newest = report.get("last_event_at") is None or event["occurred_at"] >= report["last_event_at"]
    if newest:
        a = payload["assignee"]
        report.update(
            status=payload["status"], level=a["level"], case_id=payload["case_id"],
            handler={"level": a["level"], "unit_name": a.get("unit_name"), "name": a.get("lead_name"),
                     "phone": a.get("lead_phone_masked"), "unit_id": a.get("unit_id")},
            expected_at=payload.get("promise_due") or report.get("expected_at"),
            last_event_at=event["occurred_at"], updated_at=event["occurred_at"])
        if event["type"] == "case.resolved":
            # One resolution of the case: what the resident is asked to rate (once each).
            report["resolutions"] = report.get("resolutions", 0) + 1
            report["resolution"] = {"no": report["resolutions"], "at": event["occurred_at"], "level": a["level"],
                                    "unit_id": a.get("unit_id"), "unit_name": a.get("unit_name"),
                                    "lead_id": a.get("lead_id"), "lead_name": a.get("lead_name"),
                                    "note": payload.get("note")}
    if newest:
        from .supplements import fold_pause  # the resident's answer to a paused case

        fold_pause(report, event)
    report["case_id"] = payload["case_id"]
    report["resend_due"] = None  # dispatch has the report
    # event_id and status: the Open311 updates feed (open311_updates.py) derives update_id and status from them.
    report["timeline"].append({"at": event["occurred_at"], "type": event["type"],
                               "text": summary_text(event["type"], payload),
                               "event_id": event["id"], "status": payload.get("status")})
    report["timeline"].sort(key=lambda e: e["at"])


def category_name(code: str) -> str:
    return CATEGORIES.get(code, code)
