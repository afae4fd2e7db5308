"""案件列表 for township staff, after sign-in: the township's open cases with filters (待接单 /
办理中 / 即将超时 / 已超时 / 挂起中), and on a case 督办, 改派 and 调整类别 — the desk's township
actions (desk.py), as the case API does them. Plain forms with the session's CSRF token; another
township's case is not found."""
from __future__ import annotations

from flask import redirect, request
from marshmallow import ValidationError

from shared.auth import CSRF_FIELD, page_person
from shared.domain.categories import CATEGORIES
from shared.domain.levels import POST_TITLES
from shared.pages.web import field_errors

from ..desk import STAFF, BadField, CaseNotVisible
from ..org import has_lead
from ..page_forms import TIERS, ReassignForm, RecategoriseForm, SuperviseForm
from ..transitions import STATUS_TEXT, WrongState
from .timeline import timeline_items

FILTERS = (("assigned", "待接单"), ("accepted", "办理中"), ("due_soon", "即将超时"), ("overdue", "已超时"),
           ("paused", "挂起中"))
MAX_CASES = 200
ACTIONS = {
    "supervise": (SuperviseForm, lambda d, p, c, f: d.supervise(p, c, f["note"])),
    "reassign": (ReassignForm, lambda d, p, c, f: d.reassign(p, c, f["unit_id"], f.get("note"))),
    "recategorise": (RecategoriseForm, lambda d, p, c, f: d.recategorise(p, c, f.get("category"), f.get("tier"),
                                                                       f.get("note"))),
}
DONE = {"supervise": "已督办，经办人会收到提醒。", "reassign": "已改派。", "recategorise": "类别已调整，时限按新类别计算。"}


def _filtered(cases: list[dict]) -> dict[str, list[dict]]:
    by_status = {k: [c for c in cases if c["status"] == k] for k in ("assigned", "accepted")}
    return {**by_status, **{k: [c for c in cases if c.get("timing") == k] for k in ("due_soon", "overdue", "paused")}}


def staff_case_routes(bp, pages, org, desk, issuer) -> None:
    def person(code: str):
        return page_person(*STAFF)

    def signin(where: str):
        return redirect(f"/signin?next={where}", 303)

    def gone():
        return pages.render("gone.html", status=404, title="未找到")

    @bp.get("/staff/<string:code>/cases")
    def township_cases(code):
        principal = person(code)
        if principal is None:
            return signin(f"/staff/{code}/cases")
        if not principal.sees(code) or org.townships.get(code) is None:
            return gone()
        groups = _filtered(desk.of_township(code, show="open", level=None, unit_id=None, unanswered_only=False,
                                            limit=MAX_CASES, skip=0))
        show = request.args.get("show") if request.args.get("show") in groups else "assigned"
        return pages.render("staff_cases.html", title="案件列表", township=org.townships.get(code), filters=FILTERS,
                            show=show, counts={k: len(v) for k, v in groups.items()}, cases=groups[show],
                            categories=CATEGORIES, status_text=STATUS_TEXT)

    @bp.get("/staff/<string:code>/cases/<string:case_id>")
    def staff_case(code, case_id):
        principal = person(code)
        if principal is None:
            return signin(f"/staff/{code}/cases/{case_id}")
        return _case(pages, org, desk, issuer, principal, code, case_id, {}, {}, notice=request.args.get("done"))

    @bp.post("/staff/<string:code>/cases/<string:case_id>/<string:action>")
    def staff_act(code, case_id, action):
        principal = person(code)   # a cookie write: shared.auth has checked the CSRF token
        if principal is None:
            return signin(f"/staff/{code}/cases/{case_id}")
        if action not in ACTIONS or not _in_township(desk, principal, code, case_id):
            return gone()
        schema, call = ACTIONS[action]
        values = request.form.to_dict()
        values.pop(CSRF_FIELD, None)
        again = (pages, org, desk, issuer, principal, code, case_id, {action: values})
        try:
            call(desk, principal, case_id, schema().load(values))
        except ValidationError as exc:
            return _case(*again, {action: field_errors(exc)}, 422)
        except BadField as exc:
            return _case(*again, {action: {exc.field: exc.message}}, 422)
        except WrongState as exc:
            return _case(*again, {action: {"form": str(exc)}}, 409)
        except CaseNotVisible:
            return gone()
        return redirect(f"/staff/{code}/cases/{case_id}?done={action}", 303)


def _in_township(desk, principal, code: str, case_id: str) -> bool:
    try:
        return desk.read(principal, case_id)["township"] == code
    except CaseNotVisible:
        return False


def _posts(org, code: str) -> list[dict]:
    """The posts a case can go to: every unit of the township with someone in it."""
    units = [u for u in org.tree(code) if has_lead(u)]
    return [{"id": u["_id"], "label": f"{u['name']}（{POST_TITLES.get(u['level'], u['level'])}）"}
            for u in sorted(units, key=lambda u: (u.get("path") or u["name"]))]


def _case(pages, org, desk, issuer, principal, code, case_id, values, errors, status=200, notice=None):
    try:
        case = desk.read(principal, case_id)
    except CaseNotVisible:
        case = None
    if case is None or case["township"] != code:
        return pages.render("gone.html", status=404, title="未找到")
    return pages.render(
        "staff_case.html", status=status, title=f"案件 {case['tracking_no']}", case=case, code=code,
        category=CATEGORIES.get(case["category"], case["category"]), status_text=STATUS_TEXT.get(case["status"], case["status"]),
        timeline=timeline_items(case),
        csrf=issuer.csrf_token(principal.session_id), csrf_field=CSRF_FIELD, values=values, errors=errors,
        notice=DONE.get(notice or ""), posts=_posts(org, code), categories=CATEGORIES, tiers=TIERS,
        open=case["status"] in ("assigned", "accepted"))
