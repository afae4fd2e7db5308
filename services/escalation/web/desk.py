"""部门工作台: the list of the department's cases and the case page with its actions."""
from __future__ import annotations

from flask import Response, redirect, request
from marshmallow import ValidationError

from shared.auth import CSRF_FIELD, current_principal, page_person
from shared.domain.phones import mask as mask_phone
from shared.pages.web import field_errors

from ..attachments import FIELD as FILES, MAX_BODY, MAX_BYTES, MAX_FILES, file_name
from ..model import ROLE_TEXT, Conflict, Hidden
from ..page_forms import AcceptForm, ExtensionForm, NoteForm, ReturnForm, SignOffForm
from ..service import FILE_FIELDS, BadField, NotAllowed, case_view

BOXES = (("assigned", "待签收"), ("accepted", "办理中"), ("done", "已办完"))
MAX_ROWS = 200
ACTIONS = {
    "accept": (AcceptForm, lambda f: {"note": f.get("note")}),
    "progress": (NoteForm, lambda f: {"note": f["note"]}),
    "extension": (ExtensionForm, lambda f: {"working_days": f["working_days"], "reason": f["reason"]}),
    "return": (ReturnForm, lambda f: {"reason": f["reason"], "evidence": [f["evidence"]] if f.get("evidence") else []}),
    "part": (NoteForm, lambda f: {"note": f["note"], "attachments": []}),
    "sign_off": (SignOffForm, lambda f: {"resolution": f["resolution"], "attachments": []}),
}
DONE = {"accept": "已签收。", "progress": "进展已记录。", "extension": "延期申请已提交，镇(街道)批准后时限顺延。",
        "return": "已退单，等待镇(街道)处理。", "part": "配合意见已提交。", "sign_off": "已销号，将请群众评价。"}


def desk_routes(bp, pages, service, issuer) -> None:
    def clerk():
        return page_person("department")

    @bp.get("/")
    def cases():
        principal = clerk()
        if principal is None:
            return redirect("/signin?next=/dept/", 303)
        rows, _ = service.list_for_department(principal, limit=MAX_ROWS)
        boxes = {"assigned": [r for r in rows if r["status"] == "assigned"],
                 "accepted": [r for r in rows if r["status"] == "accepted"],
                 "done": [r for r in rows if r["status"] not in ("assigned", "accepted", "transferred")]}
        show = request.args.get("show") if request.args.get("show") in boxes else "assigned"
        return pages.render("cases.html", title="部门工作台", who=principal.name, boxes=BOXES, show=show,
                            counts={k: len(v) for k, v in boxes.items()}, rows=boxes[show], roles=ROLE_TEXT)

    @bp.get("/cases/<string:case_id>")
    def case_page(case_id):
        principal = clerk()
        if principal is None:
            return redirect(f"/signin?next=/dept/cases/{case_id}", 303)
        return _case(pages, service, issuer, principal, case_id, {}, {}, notice=DONE.get(request.args.get("done") or ""))

    @bp.post("/cases/<string:case_id>/<string:action>")
    def act(case_id, action):
        request.max_content_length = MAX_BODY   # before anything (the CSRF check) reads the body
        principal = clerk()   # a cookie write: shared.auth has checked the CSRF token
        if principal is None:
            return redirect(f"/signin?next=/dept/cases/{case_id}", 303)
        if action not in ACTIONS:
            return pages.render("gone.html", status=404, title="未找到")
        schema, arguments = ACTIONS[action]
        values = {k: v for k, v in request.form.items() if k != CSRF_FIELD}
        files = uploaded_files() if action in FILE_FIELDS else []
        try:
            form = schema().load(values)
            if action == "return" and not form.get("evidence") and not files:
                raise BadField("evidence", "请提供依据：链接或文件（权责清单、文件）")
            service.act_with_files(principal, case_id, action, files, **arguments(form))
        except ValidationError as exc:
            return _case(pages, service, issuer, principal, case_id, {action: values}, {action: field_errors(exc)}, 422)
        except BadField as exc:
            return _case(pages, service, issuer, principal, case_id, {action: values}, {action: {exc.field: exc.message}}, 422)
        except (Conflict, NotAllowed) as exc:
            message = getattr(exc, "message", None) or str(exc)
            return _case(pages, service, issuer, principal, case_id, {action: values}, {action: {"form": message}}, 409)
        except Hidden:
            return pages.render("gone.html", status=404, title="未找到")
        return redirect(f"{bp.url_prefix}/cases/{case_id}?done={action}", 303)

    @bp.get("/files/<string:blob_id>")
    def attachment(blob_id):
        """A case's file, for its departments and its township's staff (cookie or bearer); else 404."""
        try:
            blob = service.attachment(current_principal(), blob_id)
        except Hidden:
            return pages.render("gone.html", status=404, title="未找到")
        resp = Response(blob.data, mimetype=blob.meta.get("content_type") or "application/octet-stream")
        resp.headers.update({"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
                             "Content-Disposition": f'inline; filename="{file_name(blob)}"'})
        return resp


def uploaded_files() -> list[bytes]:
    """The files chosen in the form's files field (an empty chooser sends one nameless part)."""
    return [f.read(MAX_BYTES + 1) for f in request.files.getlist(FILES) if f.filename]


def _case(pages, service, issuer, principal, case_id, values, errors, status=200, notice=None):
    try:
        doc, dept = service.department_case(principal, case_id)
    except Hidden:
        return pages.render("gone.html", status=404, title="未找到")
    view = case_view(doc, dept=dept)
    if status >= 400 and view.get("report"):   # an error response never carries a phone number
        view["report"]["reporter_phone"] = mask_phone(view["report"].get("reporter_phone"))
    return pages.render("case.html", status=status, title=f"工单 {view['tracking_no']}", case=view, part=view["my_part"],
                        timeline=list(reversed(view.get("timeline") or [])), csrf=issuer.csrf_token(principal.session_id),
                        csrf_field=CSRF_FIELD, values=values, errors=errors, notice=notice, max_files=MAX_FILES,
                        max_mb=MAX_BYTES // (1024 * 1024))
