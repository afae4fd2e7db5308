"""办结 with photos: the lead holding a case (or the township's staff) attaches photos from
dispatch's case page. Photos are intake's, so dispatch's page posts them here, at the same public
address: POST /resident/handling/<report id>/photos (multipart ``photos``), with the page session
and its CSRF token (shared.auth checks it). The rules are the API's (resident_photos.py): only the
lead whose post holds the case, the type by the file's first bytes, at most 5 MB each and 9 a report.
Either every photo sent is kept or none is: they are checked first, then attached by one change of
the report (ResidentPhotos.add_photos), which refuses the whole set if another upload took the last
places meanwhile.

A plain form is answered with 303 back to ``next`` (a case page of dispatch's; anything else is
replaced by the workbench, so this is no open redirect), with ``?done=photos`` or ``?photo=<why>``
(shared.pages.text.PHOTO_PROBLEMS, said next to the field there). The page's script asks for JSON:
201, or 4xx with the Chinese message and the field. A case not visible is 404, not the holder 403.
"""
from __future__ import annotations

import re

from flask import jsonify, redirect, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from shared.auth import current_principal, page_person, session_cookie
from shared.pages.text import PHOTO_PROBLEMS, SITES

from .. import photos as photo_rules
from ..loop_errors import Conflict, LoopError, NotVisible
from ..residents import Caller

NEXT = re.compile(r"/(lead/cases/[A-Za-z0-9_.-]{1,80}|staff/\d{9}/cases/[A-Za-z0-9_.-]{1,80})")
ROLES = ("lead", "staff")
STATUS = {"missing": 422, "type": 415, "size": 413, "count": 409, "expired": 403}
# These pages are intake's but a lead's or a staff member's, not a resident's: their header says so
# and leads back to the entry page, like dispatch's pages (shared.pages.text.SITES). ``home`` stays
# intake's: its templates build their addresses from it.
HANDLING = {"site": SITES["handling"], "header_href": "/"}


def handling_routes(bp, pages, loop) -> None:
    @bp.post("/handling/<string:ref>/photos")
    def handling_photos(ref):
        back = request.args.get("next", "")
        back = back if NEXT.fullmatch(back) else "/lead/"
        request.max_content_length = photo_rules.MAX_PHOTOS * photo_rules.MAX_BYTES + 256 * 1024
        if not session_cookie():
            return _refused(pages, 401, "请先登录", back)
        try:
            principal = page_person(*ROLES)   # reads the form for its CSRF token
            files = [f.read(photo_rules.MAX_BYTES + 1) for f in request.files.getlist("photos") if f.filename]
        except RequestEntityTooLarge:
            return _problem("size", back)
        except HTTPException as exc:
            if exc.code == 403:   # the CSRF token: the page is older than the session
                return _problem("expired", back)
            raise
        if principal is None:
            return _refused(pages, 401, "请先登录", back)
        report = loop.find(ref)
        if report is None or not principal.sees(report["township"]):
            return _refused(pages, 404, "未找到该诉求", back)
        problem = _check(report, files)
        if problem:
            return _problem(problem, back)
        try:
            _, uploads = loop.add_photos(report["_id"], Caller(principal.role, principal=principal), None, files)
        except NotVisible:
            return _refused(pages, 404, "未找到该诉求", back)
        except Conflict:
            return _problem("count", back)   # another upload took the last places meanwhile: none kept
        except LoopError as exc:
            return _refused(pages, exc.status, exc.message, back)
        if _wants_json():
            # The addresses let the page name these photos in its 办结 (dispatch counts the 办结's own list).
            return jsonify({"photos": len(files),
                            "uploads": [{"id": u["id"], "url": u["url"]} for u in uploads]}), 201
        return redirect(f"{back}?done=photos", 303)


def contact_routes(bp, pages, loop) -> None:
    """回电 from the lead's case page: the resident's number with a tap-to-call link, for the lead
    whose post holds the case (resident_contact.py says why and records each showing)."""
    @bp.get("/handling/<string:ref>/contact")
    def handling_contact(ref):
        back = request.args.get("next", "")
        back = back if NEXT.fullmatch(back) else "/lead/"
        principal = current_principal() if session_cookie() else None
        if principal is None or not principal.session_id:
            return redirect(f"/signin?next={back}", 303)
        try:
            found = loop.contact_for_holder(ref, Caller(principal.role, principal=principal))
        except LoopError as exc:
            return pages.render("handling_refused.html", status=exc.status, title="无法查看联系电话",
                                message=exc.message, back=back, **HANDLING)
        resp = pages.render("contact.html", title="联系群众", report=found["report"], phone=found["phone"],
                            name=found["name"], back=back, **HANDLING)
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp


def _check(report: dict, files: list[bytes]) -> str | None:
    """Why none of the files may be kept, or None: every rule is checked before any is stored."""
    if not files:
        return "missing"
    if any(len(data) > photo_rules.MAX_BYTES for data in files):
        return "size"
    if any(photo_rules.sniff(data) is None for data in files):
        return "type"
    kept = {u["id"] for u in report.get("uploads") or ()}
    new = {photo_rules.photo_id(report["_id"], data) for data in files} - kept
    return "count" if len(kept) + len(new) > photo_rules.MAX_PHOTOS else None


def _wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def _problem(key: str, back: str):
    if _wants_json():
        return jsonify({"message": PHOTO_PROBLEMS[key], "field": "photos", "code": key}), STATUS[key]
    return redirect(f"{back}?photo={key}", 303)


def _refused(pages, status: int, message: str, back: str):
    if _wants_json():
        return jsonify({"message": message}), status
    if status == 401:
        return redirect(f"/signin?next={back}", 303)
    return pages.render("handling_refused.html", status=status, title="无法上传照片", message=message, **HANDLING)
