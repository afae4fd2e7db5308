"""HTTP for the resident's loop: "didn't answer me", follow an existing report, rate, photos, and the
rating page the notification links to.

Every resident action is taken by the resident who reported: the client app's token plus
``phone_last4`` (the last four digits of the reporting phone), or the report's resident token as
the bearer. Staff and leads get 403 on them (staff record a resident's verdict through a follow-up
call instead); a report that does not exist, belongs to another township or does not match the
proof is 404 — the same answer, so nothing leaks.
"""
from __future__ import annotations

import functools
import re
from html import escape

from flask import Blueprint as FlaskBlueprint
from flask import current_app, request
from flask_smorest import Blueprint, abort

from .loop import LoopError, ResidentLoop
from .photos import MAX_BYTES, TYPES
from .reports import STATUS_NAMES
from .resident_auth import caller
from .residents import ResidentTokens
from .schemas import ResidentContactOut, FollowIn, NotAnsweredIn, PhotoOut, RatingIn, ReportView, SupplementIn

_LAST4 = re.compile(r"^\d{4}$")
_TRACKING = re.compile(r"^[0-9A-Za-z]{4,12}$")
FORM_OVERHEAD = 256 * 1024


def _view(report: dict) -> dict:
    return {**report, "status_text": STATUS_NAMES.get(report["status"], report["status"])}


def _who(tokens: ResidentTokens):
    who = caller(tokens)
    if who is None:
        abort(401, message="需要有效的凭证 (Authorization: Bearer <token>)")
    return who


def _resident_required(tokens: ResidentTokens):
    """401 before the body is read: placed above ``arguments`` so an anonymous caller never sees field errors."""
    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            _who(tokens)
            return view(*args, **kwargs)
        return inner
    return wrap


def _call(fn, *args, location: str = "json"):
    try:
        return fn(*args)
    except LoopError as exc:
        if exc.field:
            abort(exc.status, message=exc.message, errors={location: {exc.field: [exc.message]}})
        abort(exc.status, message=exc.message)


def _supplement_route(bp: Blueprint, loop: ResidentLoop, tokens: ResidentTokens) -> None:
    @bp.route("/reports/<string:ref>/supplement", methods=["POST"])
    @_resident_required(tokens)
    @bp.arguments(SupplementIn)
    @bp.response(200, ReportView)
    @bp.alt_response(409, description="当前没有需要补充的材料")
    def supplement(body, ref):
        """补充材料：经办人挂起工单请您补充时（见 awaiting），在此答复；工单随即恢复办理、恢复计时。"""
        who = _who(tokens)
        return _view(_call(loop.supplement, ref, who, body.get("phone_last4"), body["text"]))


def _contact_route(bp: Blueprint, loop: ResidentLoop, tokens: ResidentTokens) -> None:
    @bp.route("/reports/<string:ref>/contact", methods=["GET"])
    @bp.response(200, ResidentContactOut)
    @bp.alt_response(403, description="不是正在办理该诉求的三长")
    def contact(ref):
        """回电：群众的联系电话，只给正在办理该诉求的三长（所在岗位经办或已办结）；每次查看都记录在诉求上（谁、何时）。"""
        found = _call(loop.contact_for_holder, ref, _who(tokens))
        resp = current_app.make_response(({"report_id": found["report"]["_id"],
                                           "tracking_no": found["report"]["tracking_no"],
                                           "name": found["name"], "phone": found["phone"]}, 200))
        resp.headers["Cache-Control"] = "no-store"
        return resp


def build_resident_blueprints(loop: ResidentLoop, tokens: ResidentTokens) -> list:
    bp = Blueprint("resident_loop", __name__, url_prefix="/api/v1",
                   description="群众评单：常见问题转人工、关注已有诉求、评价、补充照片")

    @bp.route("/reports/<string:ref>/not-answered", methods=["POST"])
    @_resident_required(tokens)
    @bp.arguments(NotAnsweredIn)
    @bp.response(200, ReportView)
    def not_answered(body, ref):
        """“没有解决我的问题”：即时答复的常见问题转为一般诉求，派给所在邻的邻长办理。"""
        who = _who(tokens)
        return _view(_call(loop.not_answered, ref, who, body.get("phone_last4"), body.get("note")))

    @bp.route("/reports/<string:ref>/follow", methods=["POST"])
    @_resident_required(tokens)
    @bp.arguments(FollowIn)
    @bp.response(200, ReportView)
    def follow(body, ref):
        """关注已有诉求：本诉求并入 target（查询码）一并办理，不再单独派单；进展和结果同步告知。"""
        who = _who(tokens)
        return _view(_call(loop.follow, ref, who, body.get("phone_last4"), body["target"]))

    @bp.route("/reports/<string:ref>/rating", methods=["POST"])
    @_resident_required(tokens)
    @bp.arguments(RatingIn)
    @bp.response(201, ReportView)
    @bp.alt_response(409, description="尚未办结，或本次办结已评价")
    def rate(body, ref):
        """评价（群众评单）：满意 / 基本满意 / 不满意，可附意见。每次办结评价一次；不满意将退回重办。"""
        who = _who(tokens)
        return _view(_call(loop.rate, ref, who, body.get("phone_last4"), body["rating"], body.get("comment")))

    _supplement_route(bp, loop, tokens)
    _contact_route(bp, loop, tokens)

    @bp.route("/reports/<string:ref>/photos", methods=["POST"])
    @bp.response(201, PhotoOut)
    @bp.alt_response(422, description="缺少照片文件、不是JPEG/PNG/WebP、超过9张，或 phone_last4 有误（字段写在 errors.form）")
    @bp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "additionalProperties": False,
        "properties": {"file": {"type": "string", "format": "binary", "description": "JPEG、PNG或WebP，不超过5MB"},
                       "api_key": {"type": "string", "description": "凭证（也可用 Authorization: Bearer）"},
                       "phone_last4": {"type": "string", "pattern": r"^\d{4}$",
                                       "description": "群众上传时：报事手机号后四位"}}}}}})
    def upload(ref):
        """补充照片（群众本人，或经办的三长、镇街工作人员）。按文件内容识别格式，只收JPEG/PNG/WebP，单张不超过5MB，每条诉求最多9张。"""
        request.max_content_length = MAX_BYTES + FORM_OVERHEAD  # before anything reads the body
        who = _who(tokens)
        last4 = request.form.get("phone_last4")
        if last4 is not None and not _LAST4.match(last4):
            abort(422, message="须为报事手机号的后四位数字", errors={"form": {"phone_last4": ["须为报事手机号的后四位数字"]}})
        unknown = sorted(set(request.form) - {"phone_last4", "api_key"})
        if unknown:
            abort(422, message="未知字段", errors={"form": {k: ["未知字段"] for k in unknown}})
        upload_ = request.files.get("file")
        if upload_ is None:
            abort(422, message="缺少照片文件", errors={"form": {"file": ["缺少照片文件（multipart 字段 file）"]}})
        data = upload_.read(MAX_BYTES + 1)
        report, photo = _call(loop.add_photo, ref, who, last4, data, location="form")
        return {"report_id": report["_id"], "tracking_no": report["tracking_no"], "photo": photo,
                "photos": report.get("uploads", [])}

    @bp.route("/photos/<string:photo_id>", methods=["GET"])
    @bp.doc(responses={"200": {"description": "照片", "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                                                   for t in TYPES}}})
    def photo(photo_id):
        """查看照片：本镇的工作人员、三长和客户端，或该诉求的群众凭证；其他人 404。"""
        who = caller(tokens)
        if who is None:
            abort(401, message="需要有效的凭证 (Authorization: Bearer <token>)")
        blob = _call(loop.photo, photo_id, who)
        content_type = blob.meta.get("content_type", "application/octet-stream")
        resp = current_app.response_class(blob.data, mimetype=content_type)
        resp.headers["Cache-Control"] = "private, max-age=3600"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Content-Disposition"] = f'inline; filename="{photo_id}.{TYPES.get(content_type, "bin")}"'
        return resp

    return [bp, _rating_page(loop)]


# -- the rating page (the link in the resident's notification) ---------------------------------------
_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>三长制·群众评单</title>
<style>body{{font-family:sans-serif;max-width:28em;margin:1.5em auto;padding:0 1em}}label{{display:block;margin:.8em 0}}
input,textarea,button{{font-size:1.1em}}.msg{{padding:.6em;background:#f3f3f3}}</style></head><body>
<h1>群众评单</h1><p>查询码：<b>{tracking}</b></p>{message}
<form method="post"><label>报事手机号后四位 <input name="phone_last4" inputmode="numeric" pattern="[0-9]{{4}}" maxlength="4" required></label>
<label><input type="radio" name="rating" value="满意" required> 满意</label>
<label><input type="radio" name="rating" value="基本满意"> 基本满意</label>
<label><input type="radio" name="rating" value="不满意"> 不满意（将退回重新办理）</label>
<label>意见（可选）<br><textarea name="comment" rows="3" cols="30" maxlength="500"></textarea></label>
<button type="submit">提交评价</button></form></body></html>"""


def _rating_page(loop: ResidentLoop) -> FlaskBlueprint:
    page = FlaskBlueprint("rating_page", __name__)

    def render(tracking: str, message: str = "", status: int = 200):
        box = f'<p class="msg">{escape(message)}</p>' if message else ""
        return _PAGE.format(tracking=escape(tracking), message=box), status, {
            "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}

    @page.route("/r/<string:tracking_no>", methods=["GET", "POST"])
    def rate_page(tracking_no):
        if not _TRACKING.match(tracking_no):
            return render("", "查询码格式不正确", 404)
        tracking = tracking_no.upper()
        if request.method == "GET":
            return render(tracking)
        last4 = (request.form.get("phone_last4") or "").strip()
        rating = request.form.get("rating") or ""
        comment = (request.form.get("comment") or "").strip()[:500] or None
        if not _LAST4.match(last4) or rating not in ("满意", "基本满意", "不满意"):
            return render(tracking, "请填写手机号后四位并选择评价", 422)
        try:
            loop.rate_by_page(tracking, last4, rating, comment)
        except LoopError as exc:
            return render(tracking, exc.message, exc.status)
        return render(tracking, f"感谢您的评价：{rating}。" + ("我们会退回重新办理，并尽快与您联系。" if rating == "不满意" else ""))

    return page
