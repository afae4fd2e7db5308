"""The HTTP app factory: one Flask app per process, flask-smorest for OpenAPI from the schemas."""
from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from typing import Any

import orjson
from apispec import BasePlugin
from flask import Flask, Response, current_app, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api, abort
from werkzeug.exceptions import HTTPException

from .domain.phones import mask_text
from .storage.port import StoreUnavailable

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Paths the rate limiter leaves alone: the SMS platforms' delivery receipts are pushed in bursts
# from a few provider addresses and authenticated by their shared secret; throttling them would
# only make the platforms push again.
RATE_LIMIT_EXEMPT = ("/api/v1/receipts/",)


def parse_rate(text: str | None) -> tuple[int, float] | None:
    """``"60/60"`` → (60 requests, per 60 seconds); empty, ``off`` or ``0`` → None (no limit)."""
    text = (text or "").strip().lower()
    if text in ("", "off", "0", "none"):
        return None
    count, sep, seconds = text.partition("/")
    try:
        rate = (int(count), float(seconds) if sep else 60.0)
    except ValueError:
        raise ValueError(f"SANZHANG_RATE_LIMIT must look like 60/60 (requests/seconds), not {text!r}") from None
    if rate[0] < 1 or rate[1] <= 0:
        raise ValueError(f"SANZHANG_RATE_LIMIT must look like 60/60 (requests/seconds), not {text!r}")
    return rate


class RateLimiter:
    """Token buckets for write requests (POST, PUT, PATCH, DELETE), one per caller.

    The buckets live in process memory, so the limit holds **per gunicorn worker**: a deployment
    with W workers in each of R replicas lets a caller through up to W×R times the configured rate
    at worst (a load balancer spreading one caller's requests). That is enough to stop a runaway
    script or a flood; a hard global quota would need a shared store. A caller is its credential —
    role, townships, post, department, name and scopes, so two tokens for the same principal
    share a bucket — plus, for the client app (one credential that every resident's phone shares),
    the client's address; without a valid credential the address alone. Buckets hold ``rate``
    tokens and refill continuously (``rate`` per ``per`` seconds) on the monotonic clock, not the
    business clock; the least recently used buckets are forgotten past ``max_keys``.
    """

    def __init__(self, rate: int, per: float, *, max_keys: int = 10_000, now=time.monotonic):
        self.rate, self.per = rate, per
        self.max_keys = max_keys
        self._now = now
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Takes a token for ``key``: 0 when allowed, else the seconds until one is available."""
        now = self._now()
        refill = self.rate / self.per
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.rate), now))
            tokens = min(float(self.rate), tokens + (now - last) * refill)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / refill
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


def limited_principal():
    """The caller as far as the rate limiter needs it: the bearer token or the ``api_key`` query
    parameter, never a form's ``api_key`` — reading a form here would apply the default body limit
    before a view can raise its own (photos: 5 MB). A form-only key counts as its address."""
    if "principal" in g:
        return g.principal
    header = request.headers.get("Authorization", "")
    token = (header[7:].strip() if header.lower().startswith("bearer ") else None) or request.args.get("api_key")
    if not token:
        return None
    g.principal = current_app.extensions["sanzhang.auth"].resolve(token)   # what current_principal finds
    return g.principal


def caller_key(principal) -> str:
    if principal is None:
        return "ip:" + (request.remote_addr or "-")
    parts = [principal.role, ",".join(principal.townships), principal.unit_id or "", principal.department_id or "",
             principal.name or "", ",".join(principal.scopes)]
    if principal.role == "client":
        parts.append(request.remote_addr or "-")
    return "cred:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def masked(value):
    """``value`` with every phone number in its texts masked (error bodies echo input)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(v) for v in value]
    return value


def exception_headers(exc: HTTPException) -> dict:
    """Headers an HTTP error carries (Allow on a 405, Retry-After on a 429, and those given to
    flask-smorest's ``abort(headers=…)``), without its Content-Type."""
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    headers.update((getattr(exc, "data", None) or {}).get("headers") or {})
    return headers


# -- responses every operation can give, documented on each one -------------------------------------
GENERIC_RESPONSES = {
    "MALFORMED_REQUEST": "请求格式不正确（如 JSON 无法解析）",
    "NO_CREDENTIAL": "缺少凭证、凭证无效或已吊销",
    "ROLE_FORBIDDEN": "该角色无权使用此接口",
    "NOT_FOUND_OR_FOREIGN": "未找到：不存在，或属于其他镇(街道)、其他经办人、其他部门（不区分，以免泄露是否存在）",
    "BODY_TOO_LARGE": "请求体超过上限（SANZHANG_MAX_BODY，导入文件另有上限）",
    "RATE_LIMITED": "写请求过于频繁（SANZHANG_RATE_LIMIT，按凭证计）：按 Retry-After 秒数后重试",
}
FRAMEWORK_MESSAGES = {400: "请求格式不正确（如 JSON 无法解析）", 404: "未找到", 405: "不支持该方法",
                      413: "请求体过大（上限 {limit} 字节）", 415: "不支持的内容类型"}
RETRY_AFTER = {"description": "可重试前等待的秒数", "schema": {"type": "integer", "minimum": 1}, "required": True}


def spreadsheet_body(what: str) -> dict:
    """The OpenAPI request body of a spreadsheet import: a multipart upload (field ``file``) or the
    file itself as the body (its name in the ``filename`` query parameter)."""
    binary = {"type": "string", "format": "binary"}
    return {"required": True, "description": f"{what}：XLSX 或 CSV（UTF-8 或 GBK）", "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": binary}}},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": binary},
        "text/csv": {"schema": {"type": "string"}}}}


def uploaded_spreadsheet(query: dict, default_name: str, max_bytes: int,
                         body_name: str | None = None) -> tuple[bytes, str]:
    """The file of a spreadsheet import (see spreadsheet_body): the multipart field ``file``, or the
    body itself named by the ``filename`` query parameter. Reads at most ``max_bytes`` + 1 bytes of an
    upload, so the caller can tell an oversize file apart without holding all of it."""
    upload = request.files.get("file")
    if upload is not None:
        return upload.read(max_bytes + 1), upload.filename or default_name
    return request.get_data(), query.get("filename") or body_name or default_name


class GenericResponses(BasePlugin):
    """Adds to every operation the error statuses that come from the framework around it rather
    than from its own code: 401/403 where a credential is required, 404 where a path names a
    resource, 400/413 where there is a body, 429 on writes (the rate limiter). Open311's routes
    document their own errors (in the spec's format) and get only the 413 and 429 here.

    It also marks a JSON body optional when its schema requires no field: the server reads a
    missing body as ``{}``, so such a request is valid and the document says so."""

    def init_spec(self, spec):
        super().init_spec(spec)
        self.spec = spec

    def _requires_nothing(self, schema) -> bool:
        if isinstance(schema, dict) and "$ref" in schema:
            schema = self.spec.components.schemas.get(schema["$ref"].rsplit("/", 1)[-1])
        return isinstance(schema, dict) and not schema.get("required")

    def operation_helper(self, path=None, operations=None, **kwargs):
        for method, operation in (operations or {}).items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body = operation.get("requestBody") or {}
            content = body.get("content") or {}
            if body.get("required") and list(content) == ["application/json"] \
                    and self._requires_nothing(content["application/json"].get("schema")):
                body["required"] = False
            responses = operation.setdefault("responses", {})

            def add(code: str, name: str) -> None:
                if code not in responses:
                    responses[code] = name

            if (path or "").startswith("/open311/"):
                if method == "post":
                    own = (responses.get("default") or {}).get("content")
                    responses.setdefault("413", {"description": GENERIC_RESPONSES["BODY_TOO_LARGE"], "content": own})
                    responses.setdefault("429", {"description": GENERIC_RESPONSES["RATE_LIMITED"], "content": own,
                                                 "headers": {"Retry-After": RETRY_AFTER}})
                continue
            if operation.get("security", True) != []:
                add("401", "NO_CREDENTIAL")
                add("403", "ROLE_FORBIDDEN")
            if "{" in (path or ""):
                add("404", "NOT_FOUND_OR_FOREIGN")
            if "requestBody" in operation or method in ("post", "put", "patch"):
                add("400", "MALFORMED_REQUEST")
                add("413", "BODY_TOO_LARGE")
            if method.upper() in WRITE_METHODS:
                add("429", "RATE_LIMITED")


# Datetimes and dataclasses go to Flask's ``default`` (an HTTP date, asdict) as they did before.
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME \
    | orjson.OPT_PASSTHROUGH_DATACLASS


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON (every API answer, ``request.get_json``) written and read with orjson.

    Why: the standard library's encoder was 8 % of intake's accept path under load (issue 16), for an
    answer of a few hundred bytes. Answers stay what Flask's own provider writes: keys sorted, non-ASCII
    as it is, datetimes as HTTP dates, dataclasses as dicts, ``__html__`` objects as their text; compact
    out of debug mode, indented in it. What orjson will not write (an integer beyond 64 bits, a lone
    surrogate, keys of mixed types) falls back to Flask's own provider, so nothing it wrote is refused."""

    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs.keys() <= {"separators"} and kwargs.get("separators", (",", ":")) == (",", ":") \
                and not self.ensure_ascii and self.sort_keys:
            try:
                return orjson.dumps(obj, default=self.default, option=_OPTIONS).decode()
            except TypeError:   # orjson.JSONEncodeError is one
                pass
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if not kwargs:
            try:
                return orjson.loads(s)
            except orjson.JSONDecodeError:
                pass   # what orjson will not read (NaN, a BOM, UTF-16): the standard library, or its error
        return super().loads(s, **kwargs)


def create_app(runtime) -> Flask:
    app = Flask("sanzhang")
    app.json = OrjsonProvider(app)
    app.config.update(
        API_TITLE="sanzhang",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=runtime.settings.max_body,
        JSON_AS_ASCII=False,
    )
    app.extensions["sanzhang.runtime"] = runtime
    hops = getattr(runtime.settings, "trusted_proxies", 0)
    if hops:  # behind the Compose proxy or the Ingress: the client's address and scheme from its headers
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.extensions["sanzhang.auth"] = runtime.authenticator
    api = _api(app)
    _http_errors(app, api)
    _rate_limit(app, runtime)
    for parts in runtime.parts:
        for bp in parts.blueprints:
            if hasattr(bp, "_docs"):  # a flask-smorest Blueprint
                api.register_blueprint(bp)
            else:
                app.register_blueprint(bp)
    _probes(app, runtime)
    _unexpected_errors(app)
    return app


def _api(app: Flask) -> Api:
    """flask-smorest's Api: the document's security scheme and the generic error responses."""
    api = Api(app, spec_kwargs={
        "info": {"description": "三长制诉求流转系统：受理、派单、升级、市直部门销号与通知。"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "extra_plugins": [GenericResponses()],
    })
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for name, description in GENERIC_RESPONSES.items():
        response = {"description": description, "content": error}
        if name == "RATE_LIMITED":
            response["headers"] = {"Retry-After": RETRY_AFTER}
        api.spec.components.response(name, response)
    return api


def _http_errors(app: Flask, api: Api) -> None:
    def http_error(exc: HTTPException):
        # An error no blueprint handled (routing found no rule) under a prefix with its own error
        # format (Open311's) answers in that format.
        for prefix, handler in app.extensions.get("sanzhang.error_formats", ()):
            if request.path.startswith(prefix):
                return handler(exc)
        # flask-smorest's JSON body, with the headers the error carries (Allow, Retry-After), and a
        # message for the errors the framework raises without one (routing, body size, bad JSON).
        # Messages may echo what the caller sent (a value that is not a valid duration, status, …):
        # a phone number among them is masked, as in every log line.
        payload, code, headers = api.handle_http_exception(exc)
        if "message" not in payload and code in FRAMEWORK_MESSAGES:
            payload["message"] = FRAMEWORK_MESSAGES[code].format(limit=request.max_content_length)
        return jsonify(masked(payload)), code, {**exception_headers(exc), **(headers or {})}

    app.register_error_handler(HTTPException, http_error)


def _rate_limit(app: Flask, runtime) -> None:
    rate = parse_rate(runtime.settings.rate_limit)
    limiter = RateLimiter(*rate) if rate else None
    app.extensions["sanzhang.rate_limiter"] = limiter

    @app.before_request
    def rate_limit():
        if limiter is None or request.method not in WRITE_METHODS or request.path.startswith(RATE_LIMIT_EXEMPT):
            return None
        wait = limiter.take(caller_key(limited_principal()))
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            abort(429, message=f"请求过于频繁，请 {seconds} 秒后再试", headers={"Retry-After": str(seconds)})
        return None


def _probes(app: Flask, runtime) -> None:
    """Liveness, readiness and metrics: outside the OpenAPI document."""

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", services=[p.name for p in runtime.parts])

    @app.get("/readyz")
    def readyz():
        from .runtime import ready

        checks = runtime.readiness()
        ok, waived = ready(checks, runtime.broker_reached())
        body = {"status": "ready" if ok else "not ready", "checks": checks}
        if waived:
            # Reached once, lost since: still ready (people act, messages wait); operators see it here.
            body["waiting_for_broker"] = waived
        return jsonify(body), (200 if ok else 503)

    @app.get("/metrics")
    def metrics():
        from .metrics import render

        body, content_type = render()
        return Response(body, content_type=content_type)


def _unexpected_errors(app: Flask) -> None:
    @app.errorhandler(Exception)
    def unexpected(exc):
        if isinstance(exc, HTTPException):
            return jsonify(code=exc.code, status=exc.name, message=exc.description), exc.code
        if isinstance(exc, StoreUnavailable):
            # No primary within the store's retry bound (an election, a network cut): nothing was
            # written by this request, so the client may simply send it again.
            log.warning("store unavailable: %s", exc)
            body = jsonify(code=503, status="Service Unavailable", message="数据库暂时不可用，请稍后重试")
            return body, 503, {"Retry-After": "5"}
        log.exception("unhandled error")
        return jsonify(code=500, status="Internal Server Error", message="内部错误，已记录"), 500
