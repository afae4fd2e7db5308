"""查询进度 and 群众评单 on the page: the proof form, the report's page (status, who handles it,
the timeline in China time, the instant answer, photos), rating and "没有解决我的问题"."""
from __future__ import annotations

from flask import redirect, request
from marshmallow import ValidationError

from shared.domain.categories import CATEGORIES
from shared.pages.web import field_errors

from ..loop_errors import LoopError, NotVisible
from ..page_desk import csrf_for, csrf_ok
from ..page_forms import NotAnsweredForm, RatingForm, TrackForm
from ..ratings import RATING_LABELS, can_rate, current_rating
from ..reports import STATUS_NAMES
from .session import held_token, remember

WRONG_PROOF = "查询码或手机号后四位不对，请核对后再试"


def track_routes(bp, pages, desk, access=None) -> None:
    base = bp.url_prefix

    @bp.route("/<string:township>/track", methods=["GET", "POST"])
    def track_form(township):
        if request.method == "GET":
            values = {"tracking_no": request.args.get("tracking_no", "")[:12]}
            return pages.render("track_form.html", title="查询进度", township=township, values=values, errors={})
        values = request.form.to_dict()
        try:
            form = TrackForm().load(values)
            report, token = desk.prove(township, form["tracking_no"], form["phone_last4"])
        except ValidationError as exc:
            errors, status = field_errors(exc), 422
        except NotVisible:
            errors, status = {"tracking_no": WRONG_PROOF}, 404
        else:
            resp = redirect(f"{base}/{township}/track/{report['tracking_no']}", 303)
            remember(resp, report, token)
            return resp
        return pages.render("track_form.html", status=status, title="查询进度", township=township,
                            values=values, errors=errors)

    def held(township, tracking_no):
        token = held_token(tracking_no)
        report = desk.by_token(township, tracking_no, token)
        if report is None and access is not None:
            # A signed-in resident opens their own phone's reports without the last four digits;
            # the page's forms then carry the value derived from the report's own token.
            report = access.own_report(township, tracking_no)
            token = desk.tokens.issue(report) if report else None
        return report, token

    @bp.get("/<string:township>/track/<string:tracking_no>")
    def track_page(township, tracking_no):
        report, token = held(township, tracking_no)
        if report is None:
            return redirect(f"{base}/{township}/track?tracking_no={tracking_no[:12]}", 303)
        return _page(pages, report, token, {}, {}, notice=request.args.get("done"),
                     signed_in=bool(access and access.session(township)))

    @bp.post("/<string:township>/track/<string:tracking_no>/rating")
    def rate(township, tracking_no):
        return _act(pages, desk, held(township, tracking_no), RatingForm, "rating",
                    lambda r, f: desk.rate(r, f["rating"], f.get("comment")), base)

    @bp.post("/<string:township>/track/<string:tracking_no>/not-answered")
    def not_answered(township, tracking_no):
        return _act(pages, desk, held(township, tracking_no), NotAnsweredForm, "answer",
                    lambda r, f: desk.not_answered(r, f.get("note")), base)

    @bp.get("/<string:township>/track/<string:tracking_no>/photos/<string:photo_id>")
    def photo(township, tracking_no, photo_id):
        from flask import current_app

        report, _ = held(township, tracking_no)
        try:
            blob = desk.photo(report, photo_id) if report else None
        except LoopError:
            blob = None
        if blob is None:
            return pages.render("closed.html", status=404, title="未找到")
        resp = current_app.response_class(blob.data, mimetype=blob.meta.get("content_type", "image/jpeg"))
        resp.headers.update({"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})
        return resp


def _act(pages, desk, held, schema, section, action, base):
    """A form posted from the report's page: checked, done, and back to the page with a notice."""
    report, token = held
    if report is None:
        return pages.render("closed.html", status=404, title="未找到")
    values = request.form.to_dict()
    try:
        form = schema().load(values)
        if not csrf_ok(token, form["csrf"]):
            raise ValidationError({"form": ["页面已过期，请刷新后重新提交"]})
        action(report, form)
    except ValidationError as exc:
        found = field_errors(exc)
        if "csrf" in found:   # a hidden field: said at the top of the form
            found["form"] = found.pop("csrf")
        return _page(pages, report, token, {section: values}, {section: found}, status=422)
    except LoopError as exc:
        return _page(pages, report, token, {section: values}, {section: {exc.field or "form": exc.message}},
                     status=exc.status if exc.status != 404 else 409)
    return redirect(f"{base}/{report['township']}/track/{report['tracking_no']}?done={section}", 303)


def _page(pages, report, token, values, errors, status=200, notice=None, signed_in=False):
    rating = current_rating(report)
    return pages.render(
        "track.html", status=status, title=f"查询码 {report['tracking_no']}", report=report,
        township=report["township"], status_text=STATUS_NAMES.get(report["status"], report["status"]),
        category=CATEGORIES.get(report["category"], report["category"]),
        timeline=list(reversed(report.get("timeline") or [])), can_rate=can_rate(report),
        rating=rating and RATING_LABELS.get(rating.get("rating"), rating.get("rating")), rating_doc=rating,
        labels=list(RATING_LABELS.values()), csrf=csrf_for(token), values=values, errors=errors, signed_in=signed_in,
        notice={"rating": "感谢您的评价。", "answer": "已转人工办理，三长会尽快联系您。"}.get(notice or ""))
