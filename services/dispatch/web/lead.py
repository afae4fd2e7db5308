"""三长接单: the lead's workbench on the phone, after sign-in (the page session of shared.auth).
An inbox of 待接单 / 办理中 / 即将超时 / 已超时 with counts, the case page, and its actions:
接单, 进展, 办结, 上交, 答复督办. Plain forms; each carries the session's CSRF token (shared.auth
refuses a cookie write without it)."""
from __future__ import annotations

from flask import jsonify, redirect, request
from marshmallow import ValidationError

from shared.auth import CSRF_FIELD, page_person
from shared.domain.categories import CATEGORIES
from shared.pages.text import PHOTO_PROBLEMS
from shared.pages.web import field_errors

from ..desk import BadField, CaseNotVisible, NotHolder
from ..page_forms import AcceptForm, AnswerForm, EscalateForm, NoteForm, PauseForm, ResolveForm, ResumeForm
from ..pausing import PAUSE_REASONS, is_paused
from ..transitions import ESCALATION_REASONS, STATUS_TEXT, WrongState
from .me import me_routes
from .timeline import timeline_items

BOXES = (("assigned", "待接单"), ("accepted", "办理中"), ("due_soon", "即将超时"), ("overdue", "已超时"))
ROLES = ("lead", "staff")
MAX_CASES = 200


def _boxes(cases: list[dict]) -> dict[str, list[dict]]:
    return {"assigned": [c for c in cases if c["status"] == "assigned"],
            "accepted": [c for c in cases if c["status"] == "accepted"],
            "due_soon": [c for c in cases if c.get("timing") == "due_soon"],
            "overdue": [c for c in cases if c.get("timing") == "overdue"]}


def lead_routes(bp, pages, desk, issuer, sup=None) -> None:
    def person():
        return page_person(*ROLES)

    def signin(where: str):
        return redirect(f"/signin?next={where}", 303)

    if sup is not None:
        me_routes(bp, pages, sup, person, signin, issuer)

    @bp.get("/lead/")
    def inbox():
        principal = person()
        if principal is None:
            return signin("/lead/")
        boxes = _boxes(desk.held(principal, "open", MAX_CASES, 0))
        show = request.args.get("show") if request.args.get("show") in boxes else "assigned"
        return pages.render("inbox.html", title="我的工作台", who=principal.name, boxes=BOXES, show=show,
                            notice=DONE.get(request.args.get("done") or ""),
                            counts={k: len(v) for k, v in boxes.items()}, cases=boxes[show],
                            categories=CATEGORIES, status_text=STATUS_TEXT, report_for=_report_for(principal))

    @bp.get("/lead/cases/<string:case_id>")
    def case_page(case_id):
        principal = person()
        if principal is None:
            return signin(f"/lead/cases/{case_id}")
        return _case(pages, desk, issuer, principal, case_id, {}, {}, notice=request.args.get("done"),
                     photo_error=PHOTO_PROBLEMS.get(request.args.get("photo") or ""))

    @bp.post("/lead/cases/<string:case_id>/<string:action>")
    def act(case_id, action):
        principal = person()   # a cookie write: shared.auth has checked the CSRF token
        if principal is None:
            return signin(f"/lead/cases/{case_id}")
        if action not in ACTIONS:
            return pages.render("gone.html", status=404, title="未找到")
        schema, call = ACTIONS[action]
        values = _form_values()
        try:
            call(desk, principal, case_id, schema().load(values))
        except ValidationError as exc:
            return _case(pages, desk, issuer, principal, case_id, {action: values}, {action: field_errors(exc)}, 422)
        except BadField as exc:
            return _case(pages, desk, issuer, principal, case_id, {action: values}, {action: {exc.field: exc.message}}, 422)
        except (WrongState, NotHolder) as exc:
            return _case(pages, desk, issuer, principal, case_id, {action: values}, {action: {"form": str(exc)}}, 409)
        except CaseNotVisible:
            return pages.render("gone.html", status=404, title="未找到")
        if action == "escalate":   # no longer this lead's case: back to the inbox
            return redirect("/lead/?done=escalate", 303)
        return redirect(f"/lead/cases/{case_id}?done={action}", 303)

    @bp.post("/lead/cases/<string:case_id>/<string:action>/check")
    def check(case_id, action):
        """Would this form be taken? The page's script asks before it stores anything else that goes
        with it (办结's photos, which intake keeps): every check of the action, nothing stored.
        200 {"ok": true}, or 4xx JSON naming the field ("form" for the case's state) with the
        Chinese message the page would show next to it."""
        principal = person()   # a cookie write's CSRF token is checked by shared.auth, as for the action
        if principal is None:
            return jsonify(message="请先登录", field="form"), 401
        if action not in CHECKS:
            return jsonify(message="未找到", field="form"), 404
        values = _form_values()
        schema, call = CHECKS[action]
        try:
            call(desk, principal, case_id, schema().load(values))
        except ValidationError as exc:
            field, message = next(iter(field_errors(exc).items()))
            return jsonify(message=message, field=field), 422
        except BadField as exc:
            return jsonify(message=exc.message, field=exc.field), 422
        except (WrongState, NotHolder) as exc:
            return jsonify(message=str(exc), field="form"), 409
        except CaseNotVisible:
            return jsonify(message="未找到该案件", field="form"), 404
        return jsonify(ok=True)


ACTIONS = {
    "accept": (AcceptForm, lambda d, p, c, f: d.accept(p, c, f.get("note"))),
    "progress": (NoteForm, lambda d, p, c, f: d.progress(p, c, f["note"])),
    "resolve": (ResolveForm, lambda d, p, c, f: d.resolve(p, c, f["note"], photos=f.get("photos"))),
    "escalate": (EscalateForm, lambda d, p, c, f: d.escalate(p, c, f["reason"], f.get("note"))),
    "answer": (AnswerForm, lambda d, p, c, f: d.answer(p, c, f["supervision_id"], f["note"])),
    "pause": (PauseForm, lambda d, p, c, f: d.pause(p, c, f["reason"], f["note"], f.get("until"))),
    "resume": (ResumeForm, lambda d, p, c, f: d.resume(p, c, f.get("note"))),
}
# The actions a page may check before it sends them (办结: before its photos go to intake).
CHECKS = {"resolve": (ResolveForm, lambda d, p, c, f: d.resolve(p, c, f["note"], dry_run=True,
                                                               photos=f.get("photos")))}
DONE = {"accept": "已接单，请在时限内办结。", "progress": "进展已记录，群众可以看到。", "resolve": "已办结，将请群众评价。",
        "escalate": "已上交上一级。", "answer": "已答复督办。", "pause": "已挂起，办理时限暂停计时。",
        "resume": "已恢复办理，时限继续计时。", "photos": "照片已上传，办结时会一并告知群众。"}


# Fields a form may send more than once (办结's photos: one hidden field per address, kit.js).
LIST_FIELDS = ("photos",)


def _form_values() -> dict:
    values = request.form.to_dict()
    values.pop(CSRF_FIELD, None)
    values.update({name: request.form.getlist(name) for name in LIST_FIELDS if name in request.form})
    return values


def _report_for(principal) -> str | None:
    """代办: intake's report page (dispatch never imports intake), which sees the lead's session and
    files the report with channel "lead"."""
    if principal.role != "lead" or not principal.townships:
        return None
    return f"/resident/{principal.townships[0]}/report?for=lead"


def _case(pages, desk, issuer, principal, case_id, values, errors, status=200, notice=None, photo_error=None):
    try:
        case = desk.read(principal, case_id)
    except CaseNotVisible:
        return pages.render("gone.html", status=404, title="未找到")
    open_supervisions = [s for s in case.get("supervisions") or () if not s.get("answered_at")]
    return pages.render(
        "case.html", status=status, title=f"案件 {case['tracking_no']}", case=case,
        category=CATEGORIES.get(case["category"], case["category"]), status_text=STATUS_TEXT.get(case["status"], case["status"]),
        timeline=timeline_items(case),
        supervisions=open_supervisions, reasons=ESCALATION_REASONS, csrf=issuer.csrf_token(principal.session_id),
        csrf_field=CSRF_FIELD, values=values, errors=errors, notice=DONE.get(notice or ""),
        holds=case["status"] in ("assigned", "accepted"), paused=is_paused(case), pause_reasons=PAUSE_REASONS,
        photo_error=photo_error, photo_action=photo_action(case), contact_link=contact_link(case))


def contact_link(case: dict) -> str | None:
    """回电: the resident's number is intake's (dispatch never stores it); intake shows it to the lead
    whose post holds the case, so the page links there while the case is the lead's."""
    if case["status"] not in ("assigned", "accepted", "resolved") or not case.get("report_id"):
        return None
    return f"/resident/handling/{case['report_id']}/contact?next=/lead/cases/{case['_id']}"


def photo_action(case: dict) -> str:
    """Photos are intake's (dispatch never imports it): the forms post them to intake's page route at
    the same address, which sends the lead back to this case."""
    return f"/resident/handling/{case['report_id']}/photos?next=/lead/cases/{case['_id']}"
