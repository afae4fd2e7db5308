"""Open311 GeoReport v2 on intake's reports, so existing Open311 clients work unchanged.

Spec: http://wiki.open311.org/GeoReport_v2 and http://wiki.open311.org/Service_Discovery.
Every resource answers as ``.json`` (application/json) or ``.xml`` (text/xml, UTF-8, with the XML
declaration); the format is the extension, as the spec says.

    GET  /open311/v2/discovery.{json,xml}                      public
    GET  /open311/v2/services.{json,xml}?jurisdiction_id=      public
    GET  /open311/v2/services/<service_code>.{json,xml}        public
    POST /open311/v2/requests.{json,xml}                       api_key
    GET  /open311/v2/requests.{json,xml}?jurisdiction_id=…     api_key
    GET  /open311/v2/requests/<service_request_id>.{json,xml}  api_key
    GET  /open311/v2/servicerequestupdates.{json,xml}?jurisdiction_id=…&start_date&end_date  api_key

Mapping and choices:

- **jurisdiction_id** is the township (9-digit division code). One deployment serves many
  townships, so, as the spec asks of multi-jurisdiction servers, every call but discovery
  requires it (400 when missing or malformed).
- **service_code** is a category of ``shared.domain.categories.CATEGORIES``; ``metadata`` is false
  for all of them. The *service definition* of a known code answers an empty ``attributes``
  list rather than a 404: a client that fetches definitions regardless of the metadata flag keeps
  working, and one that honours the flag never asks. An unknown code is a 404.
- **service_request_id** is the report's tracking number (8 characters, read aloud over the
  phone); ``account_id`` is always null (residents have no accounts here).
- **api_key** is a token issued by ``shared.auth.TokenIssuer`` (a client app's, staff's or a
  lead's), or the operator token; it may come as the ``api_key`` parameter (query, form or JSON
  body) or as ``Authorization: Bearer``. No key: 401. A key that does not verify, or a role that
  may not use Open311 (a department): 403. All in the spec's error format.
- **Reading requests needs a key.** The spec lets a server require one, and here it must: a
  tracking number is what a resident quotes to follow their report, and listing them to anyone
  would hand out a township's reports (with their free-text descriptions) to the public.
- **Tenancy**: a credential sees only its own townships. A jurisdiction_id the key does not cover
  does not exist for it: 404, for reads and for creating, never 403 — the same rule as
  ``shared.auth.require_township``.
- **Creating**: form-encoded as the spec says, or multipart/form-data when a client (FixMyStreet)
  uploads photos as files (``photo1``…; checked by open311_media.py before anything is stored);
  JSON bodies are accepted too. ``phone`` is optional when ``lat``/``long``, ``address_string`` or
  ``address_id`` locate the problem (the spec's rule; FixMyStreet often sends only lat/long and an
  email). ``phone``, ``address_string`` or ``address_id`` (our household id) find the household in
  the roster; lat/long alone find none, so such a report goes to the township's staff, and the
  ``service_notice`` says so. ``first_name``/``last_name`` become the reporter's name (family
  name first when both are Chinese, "first last" otherwise); ``email`` is kept with the report like
  a phone (never returned, never in an event or a log); ``attribute[…]`` is accepted and ignored
  (every service has ``metadata`` false); each ``media_url`` becomes a photo. The body then goes
  through ``Open311ReportIn`` (``ReportIn``'s rules, phone optional) with channel ``open311``.
  Success is 200 (not 201) because the spec shows none and some clients test for exactly 200.
- **A reporter without a phone** gets no SMS (there is no email channel): they follow the report
  through the client, which polls ``servicerequestupdates`` and relays each step (FixMyStreet
  emails its user), and by the tracking number (this API, or the township's tracking page).
- **Updates** (``servicerequestupdates``, the GeoReport v2 extension FixMyStreet polls): each step
  of a report that a case event made, with a stable ``update_id``, a status from one table
  (open311_status.py) and the Chinese step text; see open311_updates.py. Same key and tenancy rules
  as reading requests; ``start_date``/``end_date`` bound ``updated_datetime`` as they bound
  ``requested_datetime`` for requests.
- **Listing**: ``service_request_id`` (comma-separated) overrides every other filter, as the spec
  says. Otherwise ``service_code`` and ``status`` (open, closed; comma-separated) filter, and
  ``start_date``/``end_date`` bound ``requested_datetime``: no dates mean the last 90 days, one
  date means 90 days from/to it, and a range may not span more than 90 days (400). At most
  1000 requests, newest first. Every filter runs on indexed fields (see REPORT_INDEXES).
- **Status**: ``closed`` when our report is resolved or closed, ``open`` otherwise;
  ``status_notes`` carries our Chinese status text and the latest step of the timeline.
- **Personal data**: the reporter's phone, name and ``address`` are never returned. ``address``
  is a household's door plate (“韶山村一组12号”) and names one family among 5–15, so it is
  personal data under our rules; ``address_id`` (the household) and ``zipcode`` are omitted for
  the same reason. ``agency_responsible`` names the current handler's post and lead
  (“第1邻 邻长 周桂香”), never their phone. Free text (description, status notes) passes
  through ``mask_text``, so a phone number a resident typed into a description comes back masked.
- Times are W3C date-times in China time with the offset (``2026-11-02T09:00:00+08:00``); input
  dates without an offset are taken as China time, and a bare date as the whole day.
- Every error under /open311/ — bad parameters, unknown routes or formats, wrong methods,
  bodies too large, even an unexpected failure — answers in the spec's error format
  (``[{"code": 400, "description": "…"}]`` or ``<errors><error>…``) with the matching HTTP status.
"""
from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime, time, timedelta
from typing import Any, Iterable

from flask import Blueprint as FlaskBlueprint
from flask import current_app, g, request
from flask_smorest import Blueprint
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from shared.auth import current_principal
from shared.clock import iso, parse_iso
from shared.domain.categories import CATEGORIES
from shared.domain.levels import POST_TITLES
from shared.domain.localtime import local_zone
from shared.domain.phones import mask_text

from .reports import STATUS_NAMES
from . import photos as photo_rules
from .open311_media import BadUpload, attach_uploads, read_uploads
from .open311_updates import updates_in
from .schemas import Open311ReportIn

log = logging.getLogger(__name__)

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
# When the services list or the service definitions last changed: bump it with CATEGORIES, so
# clients know to refresh what they cache (Service Discovery's "changeset").
CHANGESET = "2026-11-01T00:00:00+08:00"
CONTACT = "所在镇(街道)三长制工作专班（综治中心）；接口问题请联系本系统运维"
KEY_SERVICE = ("api_key 由镇(街道)管理员签发（命令 sanzhang token --role client --township <9位代码>），"
               "只能读写签发时指定镇(街道)的诉求。")
FORMATS = ("application/json", "text/xml")
MIME = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
FMT = "<any(json, xml):fmt>"

WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
ROLES = ("operator", "staff", "client", "lead")
CLOSED = ("resolved", "closed", "answered")   # answered: a common question the bot answered at once
OPEN = tuple(s for s in STATUS_NAMES if s not in CLOSED)
_KNOWN_PATH = re.compile(r"^/open311/v2/(discovery|services|services/[^/]+|requests|requests/[^/]+"
                         r"|servicerequestupdates)\.(json|xml)$")
_REQUEST_ID = re.compile(r"^[0-9A-Za-z]{1,32}$")
_JURISDICTION = re.compile(r"^\d{9}$")
_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CJK = re.compile(r"^[\u3400-\u9fff\u00b7]+$")

# Open311 groups and search keywords per category; a category added later falls back to 其他.
SERVICE_INFO: dict[str, tuple[str, str, str]] = {
    "environment": ("人居环境", "垃圾,保洁,卫生,异味,杂草", "房前屋后、公共场所的垃圾与卫生问题"),
    "road": ("基础设施", "道路,坑洼,桥梁,路灯,交通", "道路破损、桥梁、路灯与交通问题"),
    "water": ("基础设施", "停水,水管,漏水,下水道,排水", "供水中断、管道漏水与排水不畅"),
    "power": ("基础设施", "停电,电线,电表,线路", "停电、线路老化与用电问题"),
    "dispute": ("平安建设", "纠纷,调解,邻里,宅基地,土地", "邻里、家庭、土地等矛盾纠纷调解"),
    "hazard": ("平安建设", "隐患,危房,消防,用电安全,山体滑坡", "危房、消防、地质灾害等安全隐患"),
    "housing": ("住房与民生", "物业,房屋,漏雨,电梯,小区", "住房质量与小区物业问题"),
    "policy": ("政策与服务", "咨询,政策,办事,证明", "政策咨询与办事指引"),
    "social": ("政策与服务", "社保,医保,低保,养老,救助", "社会保障、救助与养老服务"),
    "other": ("其他", "其他", "其他诉求"),
}
# ReportIn's fields under the names an Open311 client sent them.
_PARAM_OF = {"township": "jurisdiction_id", "category": "service_code", "description": "description",
             "reporter_phone": "phone", "reporter_email": "email", "reporter_name": "first_name", "address": "address_string",
             "household_id": "address_id", "photos": "media_url", "channel": "channel", "urgent": "urgent",
             "location": "lat", "lat": "lat", "lng": "long"}


class Open311Error(Exception):
    def __init__(self, code: int, *descriptions: str, headers: dict | None = None):
        super().__init__(descriptions[0] if descriptions else "")
        self.code = code
        self.descriptions = descriptions or ("错误",)
        self.headers = headers or {}


# -- rendering -------------------------------------------------------------------------------
def _fmt() -> str:
    fmt = (request.view_args or {}).get("fmt")
    if fmt in MIME:
        return fmt
    return "xml" if request.path.endswith(".xml") else "json"


def _clean(value: Any) -> Any:
    return _XML_BAD.sub("", value) if isinstance(value, str) else value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _clean(str(value))


def _xml_fill(parent: ET.Element, data: dict) -> None:
    for key, value in data.items():
        child = ET.SubElement(parent, key)
        if isinstance(value, dict):
            _xml_fill(child, value)
        elif isinstance(value, list):
            singular = key[:-1] if key.endswith("s") else "item"
            for item in value:
                node = ET.SubElement(child, singular)
                if isinstance(item, dict):
                    _xml_fill(node, item)
                else:
                    node.text = _text(item)
        else:
            child.text = _text(value)


def _xml_bytes(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode").encode("utf-8")


def _respond(fmt: str, data: Any, *, root: str, item: str | None = None, status: int = 200):
    """``data`` is a list of ``item`` elements under ``root`` (XML), or one mapping that is ``root``."""
    if fmt == "json":
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    else:
        element = ET.Element(root)
        if item is None:
            _xml_fill(element, data)
        else:
            for entry in data:
                _xml_fill(ET.SubElement(element, item), entry)
        body = _xml_bytes(element)
    return current_app.response_class(body, status=status, mimetype=None, content_type=MIME[fmt])


def error_response(code: int, descriptions: Iterable[str], fmt: str | None = None, headers: dict | None = None):
    fmt = fmt or _fmt()
    errors = [{"code": code, "description": mask_text(d)} for d in descriptions]   # they may echo input
    response = _respond(fmt, errors, root="errors", item="error", status=code)
    response.headers.update(headers or {})
    return response


def handle_error(exc: Exception):
    from shared.web import exception_headers

    if isinstance(exc, Open311Error):
        return error_response(exc.code, exc.descriptions, headers=exc.headers)
    if isinstance(exc, HTTPException):
        texts = {404: "未找到该资源", 405: f"不支持 {request.method} 方法", 413: "请求体过大",
                 400: "请求格式不正确"}
        message = ((getattr(exc, "data", None) or {}).get("message")) or texts.get(exc.code, exc.name)
        return error_response(exc.code or 500, [message], headers=exception_headers(exc))
    log.exception("open311 request failed")
    return error_response(500, ["内部错误，已记录"])


# -- parameters --------------------------------------------------------------------------------
def _params() -> dict:
    """Query and form parameters, or a JSON object body; lists stay lists (media_url)."""
    if request.method == "POST" and request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise Open311Error(400, "请求体不是有效的 JSON 对象")
        return body
    merged: dict[str, Any] = {}
    for source in (request.args, request.form if request.method == "POST" else None):
        if source:
            for key in source:
                values = source.getlist(key)
                merged[key] = values if len(values) > 1 else values[0]
    return merged


def _str(params: dict, name: str) -> str | None:
    value = params.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise Open311Error(400, f"{name}: 参数格式不正确")
    value = str(value).strip()
    return value or None


def _jurisdiction(params: dict) -> str:
    value = _str(params, "jurisdiction_id")
    if value is None:
        raise Open311Error(400, "jurisdiction_id: 必填参数（9位镇(街道)行政区划代码）")
    if not _JURISDICTION.match(value):
        raise Open311Error(400, "jurisdiction_id: 必须是9位行政区划代码")
    return value


def _principal(params: dict):
    principal = current_principal()
    supplied = bool(request.headers.get("Authorization", "").strip() or params.get("api_key"))
    if principal is None and isinstance(params.get("api_key"), str) and params["api_key"]:
        principal = current_app.extensions["sanzhang.auth"].resolve(params["api_key"])  # a JSON body
        g.principal = principal
    if principal is None:
        if supplied:
            raise Open311Error(403, "api_key 无效")
        raise Open311Error(401, "api_key: 必填参数（由镇(街道)管理员签发）")
    if principal.role not in ROLES:
        raise Open311Error(403, f"api_key 的角色 {principal.role} 不能使用 Open311 接口")
    return principal


def _township_for(params: dict) -> str:
    """Authenticates, then the township the key may see; another township's does not exist (404)."""
    principal = _principal(params)
    township = _jurisdiction(params)
    if not principal.sees(township):
        raise Open311Error(404, f"jurisdiction_id {township} 未找到")
    return township


def _list(params: dict, name: str) -> list[str]:
    value = params.get(name)
    values = value if isinstance(value, list) else [value]
    out: list[str] = []
    for v in values:
        if isinstance(v, str):
            out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _when(text: str, name: str, *, end: bool) -> datetime:
    raw = text.strip()
    # An unencoded "+08:00" in a query string arrives as " 08:00".
    raw = re.sub(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$", r"\1+\2", raw)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = date.fromisoformat(raw)
            moment = datetime.combine(day, time.max if end else time.min, tzinfo=local_zone())
        else:
            moment = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=local_zone())
    except ValueError:
        raise Open311Error(400, f"{name}: 时间格式不正确，应为 W3C 格式，如 2026-11-02T09:00:00+08:00") from None
    return moment


def w3(stored: str | None) -> str | None:
    """A stored UTC time as a W3C date-time in China time."""
    if not stored:
        return None
    return parse_iso(stored).astimezone(local_zone()).isoformat(timespec="seconds")


# -- views of a report ---------------------------------------------------------------------------
def agency_responsible(report: dict) -> str | None:
    handler = report.get("handler") or {}
    if not handler:
        return None
    post = POST_TITLES.get(handler.get("level"), "")
    parts: list[str] = []
    for part in (handler.get("unit_name"), post, handler.get("name")):
        if part and part not in parts and not (parts and part in parts[-1]):
            parts.append(part)
    return mask_text(" ".join(parts)) or None


def status_notes(report: dict) -> str:
    text = STATUS_NAMES.get(report.get("status"), report.get("status") or "")
    timeline = report.get("timeline") or []
    latest = timeline[-1]["text"] if timeline else ""
    if latest and text in latest:
        text = latest  # "已办结：路灯已修好" already says "已办结"
    elif latest:
        text = f"{text}：{latest}"
    return mask_text(text)


def service_notice(report: dict) -> str:
    if report.get("status") == "answered" and report.get("answer"):
        return f"常见问题即时答复：{report['answer']['answer']}"
    if report.get("status") in CLOSED:
        return "已办结，感谢您的反映。"
    if report.get("expected_at"):
        when = parse_iso(report["expected_at"]).astimezone(local_zone()).strftime("%Y-%m-%d %H:%M")
        return f"承诺于 {when}（北京时间）前办结，逾期自动上报上一级。"
    return "已受理，正在分派：按地址或登记电话派给所在邻的邻长，无法确定住户时由镇(街道)工作人员分派。"


def request_view(report: dict) -> dict:
    view = {
        "service_request_id": report["tracking_no"],
        "status": "closed" if report.get("status") in CLOSED else "open",
        "status_notes": status_notes(report),
        "service_name": CATEGORIES.get(report["category"], report["category"]),
        "service_code": report["category"],
        "description": mask_text(report.get("description") or ""),
        "agency_responsible": agency_responsible(report),
        "service_notice": service_notice(report),
        "requested_datetime": w3(report.get("submitted_at")),
        "updated_datetime": w3(report.get("updated_at")),
        "expected_datetime": w3(report.get("expected_at")),
    }
    location = report.get("location") or {}
    if location.get("lat") is not None and location.get("lng") is not None:
        view["lat"] = location["lat"]
        view["long"] = location["lng"]
    if report.get("photos"):
        view["media_url"] = report["photos"][0]
    elif report.get("uploads"):
        # A photo uploaded to us: served at /api/v1/photos/<id> to the same township's api_key.
        view["media_url"] = request.url_root.rstrip("/") + report["uploads"][0]["url"]
    return view


def service_view(code: str) -> dict:
    group, keywords, description = SERVICE_INFO.get(code, ("其他", CATEGORIES[code], CATEGORIES[code]))
    return {"service_code": code, "service_name": CATEGORIES[code], "description": description,
            "metadata": False, "type": "realtime", "keywords": keywords, "group": group}


# -- creating ----------------------------------------------------------------------------------
def _reporter_name(first: str | None, last: str | None) -> str | None:
    if first and last:
        return last + first if _CJK.match(first) and _CJK.match(last) else f"{first} {last}"
    return first or last


def _flatten(messages: Any, field: str | None = None) -> list[tuple[str, str]]:
    """Marshmallow's nested error dict as (open311 parameter, message) pairs."""
    out: list[tuple[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = field if isinstance(key, int) else _PARAM_OF.get(str(key), field or str(key))
            if key == "_schema":
                name = field or "request"
            out.extend(_flatten(value, name))
    elif isinstance(messages, list):
        for value in messages:
            out.extend(_flatten(value, field))
    else:
        out.append((field or "request", str(messages)))
    return out


def report_body(params: dict, township: str) -> dict:
    """The Open311 parameters as a ``ReportIn`` body, validated by the same schema as /api/v1."""
    missing = []
    code = _str(params, "service_code")
    if code is None:
        missing.append("service_code: 必填参数")
    elif code not in CATEGORIES:
        missing.append(f"service_code: {code} 不存在，可选值见 services.json")
    phone = _str(params, "phone")
    if phone is None and not any(_str(params, p) for p in ("lat", "long", "address_string", "address_id")):
        missing.append("phone: 必填参数（报事人电话）；不留电话时须提供 lat/long 或 address_string 以确定问题位置")
    description = _str(params, "description")
    if description is None:
        missing.append("description: 必填参数（请描述问题）")
    if missing:
        raise Open311Error(400, *missing)
    body: dict[str, Any] = {"township": township, "category": code, "description": description,
                            "channel": "open311"}
    for param, key in (("phone", "reporter_phone"), ("email", "reporter_email"),
                       ("address_string", "address"), ("address_id", "household_id")):
        value = _str(params, param)
        if value:
            body[key] = value
    name = _reporter_name(_str(params, "first_name"), _str(params, "last_name"))
    if name:
        body["reporter_name"] = name
    lat, lng = _str(params, "lat"), _str(params, "long")
    if (lat is None) != (lng is None):
        raise Open311Error(400, "lat/long: 须同时提供经度和纬度")
    if lat is not None:
        body["location"] = {"lat": lat, "lng": lng}
    media = params.get("media_url")
    media = [m for m in (media if isinstance(media, list) else [media]) if isinstance(m, str) and m.strip()]
    if media:
        body["photos"] = [m.strip() for m in media]
    try:
        return Open311ReportIn().load(body)
    except ValidationError as exc:
        raise Open311Error(400, *[f"{p}: {m}" for p, m in _flatten(exc.messages)]) from None


def _uploads() -> list[bytes]:
    """Photos sent as files in a multipart body, checked before anything is stored."""
    if request.method != "POST" or not request.files:
        return []
    files = [(name, f.read(photo_rules.MAX_BYTES + 1)) for name in request.files for f in request.files.getlist(name)]
    try:
        return read_uploads(files)
    except BadUpload as exc:
        raise Open311Error(400, str(exc)) from None


def created_notice(report: dict) -> str:
    """What the client shows after creating: true whichever way dispatch routes the report."""
    no = report["tracking_no"]
    if report.get("status") == "answered":
        return f"{service_notice(report)}（编号 {no}；如未解决您的问题，可申请转人工办理）"
    where = ("系统将按地址（或登记电话）找到所在邻，派给邻长办理；地址不在本镇花名册中时，由镇(街道)工作人员分派。"
             if report.get("address") or report.get("household_id") or report.get("reporter_phone") else
             "仅凭位置无法确定所在邻，将由镇(街道)工作人员分派。")
    follow = (f"请凭编号 {no} 查询办理进展。" if report.get("reporter_phone") else
              f"您未留电话，不会收到短信；请凭编号 {no} 查询办理进展，或留意您提交诉求的平台转来的进展。")
    return f"您的诉求已受理。{where}{follow}"


# -- the blueprint ---------------------------------------------------------------------------------
def _query(name: str, description: str, required: bool = False, **schema) -> dict:
    return {"in": "query", "name": name, "required": required, "description": description,
            "schema": {"type": "string", **schema}}


_JURISDICTION_DOC = _query("jurisdiction_id", "镇(街道)9位行政区划代码", True, pattern=r"^\d{9}$")
_FORM_SCHEMA = {"type": "object", "required": ["api_key", "jurisdiction_id", "service_code", "description"],
                "properties": {k: {"type": "string"} for k in (
                    "api_key", "jurisdiction_id", "service_code", "description", "phone", "address_string",
                    "address_id", "lat", "long", "first_name", "last_name", "email", "media_url")}}
_API_KEY_DOC = _query("api_key", "TokenIssuer 签发的凭证（也可用 Authorization: Bearer）")


def _responses(ok: str, single: bool = False) -> dict:
    """``single``: the answer is one JSON object (discovery, a service definition), not an array."""
    content = {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
               "text/xml": {"schema": {"type": "string"}}}
    ok_content = {**content, "application/json": {"schema": {"type": "object"}}} if single else content
    out = {"200": {"description": ok, "content": ok_content}}
    for code, text in (("400", "参数缺失或不正确"), ("401", "缺少 api_key"), ("403", "api_key 无效"),
                       ("404", "未找到（含他镇的诉求）")):
        out[code] = {"description": f"{text}：Open311 错误格式 [{{code, description}}] / <errors>", "content": content}
    # Not flask-smorest's generic error shape: every error here is in the spec's format.
    out["default"] = {"description": "其他错误，同为 Open311 错误格式", "content": content}
    return out


def build_open311_blueprints(service) -> list:
    """The documented Open311 routes, and a fallback that keeps /open311/ errors in the spec's format."""
    bp = Blueprint("open311", __name__, url_prefix="/open311/v2",
                   description="Open311 GeoReport v2：现有 Open311 客户端可直接提交和查询诉求")
    bp.register_error_handler(Exception, handle_error)
    bp.before_request(_options)
    # Registered in this order so the OpenAPI document lists the operations as it always has.
    _discovery_routes(bp)
    _request_routes(bp, service)
    _update_routes(bp, service)
    return [bp, _fallback_blueprint()]


def _discovery_routes(bp: Blueprint) -> None:
    """Discovery, the service list and a service's definition: public, as the spec has them."""

    @bp.route(f"/discovery.{FMT}", methods=["GET"])
    @bp.doc(security=[], responses=_responses("服务发现文档", single=True))
    def discovery(fmt):
        """Open311 服务发现（Service Discovery）"""
        endpoint = {"specification": SPECIFICATION, "url": request.url_root.rstrip("/") + bp.url_prefix,
                    "changeset": CHANGESET, "type": "production", "formats": list(FORMATS)}
        doc = {"changeset": CHANGESET, "contact": CONTACT, "key_service": KEY_SERVICE, "endpoints": [endpoint]}
        return _respond(fmt, doc, root="discovery")

    @bp.route(f"/services.{FMT}", methods=["GET"])
    @bp.doc(security=[], parameters=[_JURISDICTION_DOC], responses=_responses("服务（诉求类别）列表"))
    def services(fmt):
        """服务列表：每个诉求类别一项，metadata 均为 false"""
        _jurisdiction(_params())
        return _respond(fmt, [service_view(code) for code in CATEGORIES], root="services", item="service")

    @bp.route(f"/services/<string:service_code>.{FMT}", methods=["GET"])
    @bp.doc(security=[], parameters=[_JURISDICTION_DOC], responses=_responses("服务定义", single=True))
    def service_definition(service_code, fmt):
        """服务定义：类别没有附加属性，返回空的 attributes 列表；未知类别 404"""
        _jurisdiction(_params())
        if service_code not in CATEGORIES:
            raise Open311Error(404, f"service_code {service_code} 不存在")
        return _respond(fmt, {"service_code": service_code, "attributes": []}, root="service_definition")


def _request_routes(bp: Blueprint, service) -> None:
    """Submitting and reading service requests (an api_key is needed)."""

    @bp.route(f"/requests.{FMT}", methods=["POST"])
    @bp.doc(responses=_responses("已受理：[{service_request_id, service_notice, account_id}]"),
            requestBody={"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": _FORM_SCHEMA},
                "multipart/form-data": {"schema": {**_FORM_SCHEMA, "properties": {
                    **_FORM_SCHEMA["properties"], "photo1": {"type": "string", "format": "binary"}}}},
                "application/json": {"schema": {"type": "object"}}}})
    def create_request(fmt):
        """提交诉求（POST Service Request）。不留 phone 时须有 lat/long 或 address_string；可用 multipart 上传照片。"""
        params = _params()
        township = _township_for(params)
        body = report_body(params, township)
        uploads = _uploads()
        report = service.submit(body)
        if uploads:
            report = attach_uploads(service.loop, report, uploads)
        return _respond(fmt, [{"service_request_id": report["tracking_no"], "service_notice": created_notice(report),
                               "account_id": None}], root="service_requests", item="request")

    @bp.route(f"/requests.{FMT}", methods=["GET"])
    @bp.doc(parameters=[_JURISDICTION_DOC, _API_KEY_DOC,
                        _query("service_request_id", "编号，逗号分隔；给出时忽略其他条件"),
                        _query("service_code", "类别，逗号分隔"),
                        _query("start_date", "requested_datetime 下限（W3C 时间）"),
                        _query("end_date", "requested_datetime 上限（W3C 时间），区间不超过90天"),
                        _query("status", "open、closed，逗号分隔")],
            responses=_responses("诉求列表（最多1000条，最新在前）"))
    def list_requests(fmt):
        """查询诉求（GET Service Requests）"""
        params = _params()
        township = _township_for(params)
        reports = _search(service, township, params)
        return _respond(fmt, [request_view(r) for r in reports], root="service_requests", item="request")

    @bp.route(f"/requests/<string:service_request_id>.{FMT}", methods=["GET"])
    @bp.doc(parameters=[_JURISDICTION_DOC, _API_KEY_DOC], responses=_responses("一条诉求（数组中一项）"))
    def read_request(service_request_id, fmt):
        """查询一条诉求（GET Service Request）"""
        params = _params()
        township = _township_for(params)
        report = service.in_township(township, service_request_id) if _REQUEST_ID.match(service_request_id) else None
        if report is None:
            raise Open311Error(404, f"service_request_id {service_request_id} 未找到")
        return _respond(fmt, [request_view(report)], root="service_requests", item="request")


def _update_routes(bp: Blueprint, service) -> None:
    """The servicerequestupdates extension FixMyStreet polls (open311_updates.py)."""

    @bp.route(f"/servicerequestupdates.{FMT}", methods=["GET"])
    @bp.doc(parameters=[_JURISDICTION_DOC, _API_KEY_DOC,
                        _query("start_date", "updated_datetime 下限（W3C 时间）"),
                        _query("end_date", "updated_datetime 上限（W3C 时间），区间不超过90天")],
            responses=_responses("诉求办理进展（每步一条，update_id 稳定，最早在前，最多1000条）"))
    def request_updates(fmt):
        """查询办理进展（GET Service Request Updates，FixMyStreet 扩展）"""
        params = _params()
        township = _township_for(params)
        since, until = _window(params, service.clock.now())
        reports = service.updated_since(township, iso(since))
        updates = updates_in(reports, iso(since), iso(until), MAX_RESULTS)
        return _respond(fmt, updates, root="service_request_updates", item="request_update")


def _search(service, township: str, params: dict) -> list:
    """The reports a GET Service Requests asks for: by number, or by category, status and time."""
    ids = _list(params, "service_request_id")
    if ids:
        bad = [i for i in ids if not _REQUEST_ID.match(i)]
        if bad:
            raise Open311Error(400, f"service_request_id: {bad[0]} 格式不正确")
        reports = service.by_tracking_numbers(township, ids[:MAX_RESULTS])
    else:
        codes = _list(params, "service_code")
        unknown = [c for c in codes if c not in CATEGORIES]
        if unknown:
            raise Open311Error(400, f"service_code: {unknown[0]} 不存在，可选值见 services.json")
        wanted = _list(params, "status")
        bad = [s for s in wanted if s not in ("open", "closed")]
        if bad:
            raise Open311Error(400, f"status: {bad[0]} 不正确，可选 open、closed")
        statuses = ((OPEN if "open" in wanted else ()) + (CLOSED if "closed" in wanted else ())) or None
        since, until = _window(params, service.clock.now())
        reports = service.search(township, since=iso(since), until=iso(until), categories=codes or None,
                                 statuses=statuses, limit=MAX_RESULTS)
    return reports


def _fallback_blueprint() -> FlaskBlueprint:
    # Not in the OpenAPI document: unknown paths and formats, and wrong methods, under /open311/.
    fallback = FlaskBlueprint("open311_fallback", __name__, url_prefix="/open311")
    fallback.register_error_handler(Exception, handle_error)
    # A path no rule can route (a newline in it) fails before any blueprint: the app's handler
    # answers it in Open311's format too (shared/web.py).
    fallback.record_once(lambda state: state.app.extensions.setdefault("sanzhang.error_formats", []).append(
        ("/open311/", handle_error)))
    fallback.before_request(_options)

    @fallback.route("/", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @fallback.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def not_here(rest: str = ""):
        if _KNOWN_PATH.match(request.path):
            raise Open311Error(405, f"不支持 {request.method} 方法", headers={"Allow": _allowed(request.path)})
        if re.search(r"\.[A-Za-z0-9]+$", request.path) and not request.path.endswith((".json", ".xml")):
            raise Open311Error(404, "不支持该格式：仅支持 .json 与 .xml")
        raise Open311Error(404, "未找到该资源；入口见 /open311/v2/discovery.json")

    return fallback


def _options():
    """OPTIONS lists what the documented routes answer (Flask's own answer would add the fallback's
    catch-all methods)."""
    if request.method == "OPTIONS" and _KNOWN_PATH.match(request.path):
        response = current_app.response_class(status=200)
        response.headers["Allow"] = _allowed(request.path)
        return response
    return None


def _allowed(path: str) -> str:
    """The methods the documented routes answer at ``path`` (the fallback's own do not count)."""
    adapter = current_app.url_map.bind("localhost")
    allowed = set()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        try:
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except HTTPException:
            continue
        if not rule.endpoint.startswith("open311_fallback."):
            allowed.add(method)
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed | {"OPTIONS"}))


def _window(params: dict, now: datetime) -> tuple[datetime, datetime]:
    start, end = _str(params, "start_date"), _str(params, "end_date")
    since = _when(start, "start_date", end=False) if start else None
    until = _when(end, "end_date", end=True) if end else None
    if since is None and until is None:
        return now - WINDOW, now
    if since is None:
        since = until - WINDOW
    elif until is None:
        until = since + WINDOW
    if until < since:
        raise Open311Error(400, "end_date: 不能早于 start_date")
    if until - since > WINDOW + timedelta(days=1):
        raise Open311Error(400, "start_date/end_date: 查询区间不能超过90天")
    return since, until
