"""Fake SMS / WeChat provider servers for tests.

Each fake listens on 127.0.0.1 (port 0) in a thread, records every request, checks the
request the way the provider documents it (signature recomputed here from the request as
received, with an implementation written independently of the adapters), and answers
with the provider's own success and error shapes and HTTP statuses.

Format violations are answered with the provider's error *and* appended to
`fake.problems`, so a test can assert `fake.problems == []` (an assert inside the server
thread would not fail the test).

Scripting: `fake.fail_next("Throttling.User")` makes the next matching call answer with
that provider error (after the request has been verified); `fake.delay_next(2.0)` holds the
next answer for two seconds (pair with a short adapter timeout); `fake.reply_next_raw(502,
b"<html>...")` answers verbatim. Scripts apply to one operation: "send" by default,
"token" for the WeChat-family token endpoints. Each call consumes one scripted entry.

    with FakeAliyunSms() as fake:
        channel = AliyunSmsChannel.from_env(fake.env(templates={...}), opener=no_proxy_opener())
        ...
        assert fake.problems == []
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable, Mapping


def no_proxy_opener() -> urllib.request.OpenerDirector:
    """An opener that ignores http_proxy & co., so loopback fakes are reached directly."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass
class Scripted:
    code: str | int | None = None        # provider error code to answer with
    message: str | None = None
    status: int | None = None            # HTTP status override
    raw: bytes | None = None             # answer these bytes verbatim, no verification
    delay: float = 0.0                   # seconds to wait before answering
    extra: dict = field(default_factory=dict)


class FakeProvider:
    """Server plumbing shared by the fakes. Subclasses implement `operation` and `handle`."""

    operations: tuple[str, ...] = ("send",)

    def __init__(self):
        self.requests: list[RecordedRequest] = []
        self.problems: list[str] = []
        self._scripts: dict[str, deque[Scripted]] = {op: deque() for op in self.operations}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._serve()

            def do_POST(self):
                self._serve()

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urllib.parse.urlsplit(self.path)
                req = RecordedRequest(
                    method=self.command, path=split.path,
                    query=dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                )
                status, payload, delay = fake._dispatch(req)
                if delay:
                    time.sleep(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(
                    payload, ensure_ascii=False).encode("utf-8")
                ctype = "text/html" if isinstance(payload, bytes) else "application/json;charset=utf-8"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args):
                pass  # keep test output clean; URLs carry tokens anyway

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll keeps shutdown (one per test) from costing half a second.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "fake not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- scripting

    def fail_next(self, code, message: str | None = None, *, op: str = "send",
                  status: int | None = None, times: int = 1, **extra):
        for _ in range(times):
            self._scripts[op].append(Scripted(code=code, message=message, status=status, extra=extra))

    def delay_next(self, seconds: float, *, op: str = "send"):
        self._scripts[op].append(Scripted(delay=seconds))

    def reply_next_raw(self, status: int, body: bytes | dict, *, op: str = "send"):
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        self._scripts[op].append(Scripted(status=status, raw=raw))

    def calls(self, op: str) -> list[RecordedRequest]:
        return [r for r in self.requests if self.operation(r) == op]

    # -- dispatch

    def _dispatch(self, req: RecordedRequest):
        with self._lock:
            self.requests.append(req)
            op = self.operation(req)
            queue = self._scripts.get(op)
            scripted = queue.popleft() if queue else None
            if scripted and scripted.raw is not None:
                return scripted.status or 200, scripted.raw, scripted.delay
            status, payload = self.handle(req, op, scripted)
            return status, payload, scripted.delay if scripted else 0.0

    def problem(self, text: str):
        self.problems.append(text)

    def operation(self, req: RecordedRequest) -> str | None:
        raise NotImplementedError

    def handle(self, req: RecordedRequest, op: str | None, scripted: Scripted | None):
        raise NotImplementedError


# ============================================================ Alibaba Cloud SMS

def _pop_encode(value: str) -> str:
    # As Alibaba's documentation builds it: form-encode, then patch the three differences.
    return (urllib.parse.quote_plus(value, safe="", encoding="utf-8")
            .replace("+", "%20").replace("*", "%2A").replace("%7E", "~"))


def aliyun_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    query = "&".join(_pop_encode(k) + "=" + _pop_encode(v) for k, v in pairs)
    return method + "&" + _pop_encode("/") + "&" + _pop_encode(query)


def aliyun_expected_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    mac = hmac.new(f"{secret}&".encode("utf-8"), aliyun_string_to_sign(method, params).encode("utf-8"),
                   hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


# (HTTP status, message, gateway error?) — gateway errors carry HostId and Recommend.
ALIYUN_ERRORS: dict[str, tuple[int, str, bool]] = {
    "SignatureDoesNotMatch": (400, "Specified signature is not matched with our calculation. "
                                   "server string to sign is:{sts}", True),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found.", True),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already.", True),
    "MissingParameter": (400, "The input parameter \"{name}\" that is mandatory for processing "
                              "this request is not supplied.", True),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted.", True),
    "InvalidParameter": (400, "The specified parameter \"{name}\" is not valid.", True),
    "InvalidApi.NotFound": (404, "Specified api is not found, please check your url and method.", True),
    "Throttling.User": (400, "Request was denied due to user flow control.", True),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server.", True),
    "isv.BUSINESS_LIMIT_CONTROL": (200, "触发小时级流控Permits:5", False),
    "isv.MOBILE_NUMBER_ILLEGAL": (200, "非法手机号", False),
    "isv.SMS_TEMPLATE_ILLEGAL": (200, "该账号下找不到对应模板", False),
    "isv.SMS_SIGNATURE_ILLEGAL": (200, "该账号下找不到对应签名", False),
    "isv.TEMPLATE_MISSING_PARAMETERS": (200, "模板变量缺少对应参数值", False),
    "isv.INVALID_JSON_PARAM": (200, "JSON参数不合法，只接受字符串值", False),
    "isp.SYSTEM_ERROR": (200, "系统出现错误，请重新调用", False),
}

_ALIYUN_REQUIRED = ("AccessKeyId", "Action", "Format", "SignatureMethod", "SignatureNonce",
                    "SignatureVersion", "Timestamp", "Version", "Signature",
                    "PhoneNumbers", "SignName", "TemplateCode")


class FakeAliyunSms(FakeProvider):
    """Dysmsapi SendSms. `templates` maps approved TemplateCode -> required variable names
    (None accepts any code); `sign_names` the approved signatures (None accepts any)."""

    def __init__(self, access_key_id: str = "LTAI5tFAKEKEYID", access_key_secret: str = "fake-secret",
                 *, sign_names: Iterable[str] | None = None,
                 templates: Mapping[str, Iterable[str]] | None = None):
        super().__init__()
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_names = set(sign_names) if sign_names is not None else None
        self.templates = {k: list(v) for k, v in templates.items()} if templates is not None else None
        self.sent: list[dict[str, str]] = []
        self._nonces: set[str] = set()
        self._biz = itertools.count(900619746936498440)

    def env(self, *, templates: Mapping | None = None, sign_name: str = "三长办") -> dict[str, str]:
        """Environment that points AliyunSmsChannel.from_env at this fake."""
        return {
            "SANZHANG_ALIYUN_SMS_ACCESS_KEY_ID": self.access_key_id,
            "SANZHANG_ALIYUN_SMS_ACCESS_KEY_SECRET": self.access_key_secret,
            "SANZHANG_ALIYUN_SMS_SIGN_NAME": sign_name,
            "SANZHANG_ALIYUN_SMS_ENDPOINT": self.url + "/",
            "SANZHANG_ALIYUN_SMS_TEMPLATES": json.dumps(templates or {}, ensure_ascii=False),
        }

    def operation(self, req):
        return "send"

    def _error(self, code: str, **fmt):
        status, message, gateway = ALIYUN_ERRORS.get(code, (200, "unknown", False))
        request_id = str(uuid.uuid4()).upper()
        body = {"RequestId": request_id, "Message": message.format(**fmt) if fmt else message,
                "Code": code}
        if gateway:
            body["HostId"] = "dysmsapi.aliyuncs.com"
            body["Recommend"] = (f"https://api.aliyun.com/troubleshoot?q={code}"
                                 f"&product=Dysmsapi&requestId={request_id}")
        return status, body

    def handle(self, req, op, scripted):
        if req.path != "/" or req.method not in ("GET", "POST"):
            self.problem(f"unexpected {req.method} {req.path}")
            return self._error("InvalidApi.NotFound")
        params = dict(req.query)
        if req.method == "POST":
            if not req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                self.problem("POST body is not application/x-www-form-urlencoded")
            params.update(req.form())
        for name in _ALIYUN_REQUIRED:
            if not params.get(name):
                self.problem(f"missing {name}")
                return self._error("MissingParameter", name=name)
        checks = {"Action": "SendSms", "Version": "2017-05-25", "SignatureMethod": "HMAC-SHA1",
                  "SignatureVersion": "1.0", "Format": "JSON"}
        for name, expected in checks.items():
            if params[name] != expected:
                self.problem(f"{name}={params[name]!r}, expected {expected!r}")
                return self._error("InvalidParameter", name=name)
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", params["Timestamp"]):
            self.problem(f"Timestamp {params['Timestamp']!r} is not YYYY-MM-DDThh:mm:ssZ")
            return self._error("InvalidTimeStamp.Format")
        if params["AccessKeyId"] != self.access_key_id:
            return self._error("InvalidAccessKeyId.NotFound")
        expected = aliyun_expected_signature(req.method, params, self.access_key_secret)
        if not hmac.compare_digest(expected, params["Signature"]):
            return self._error("SignatureDoesNotMatch", sts=aliyun_string_to_sign(req.method, params))
        if params["SignatureNonce"] in self._nonces:
            return self._error("SignatureNonceUsed")
        self._nonces.add(params["SignatureNonce"])

        if scripted and scripted.code:
            status, body = self._error(str(scripted.code))
            if scripted.message:
                body["Message"] = scripted.message
            return scripted.status or status, body

        numbers = params["PhoneNumbers"].split(",")
        if not all(re.fullmatch(r"(?:\+?86|0086)?1[3-9]\d{9}", n) for n in numbers):
            return self._error("isv.MOBILE_NUMBER_ILLEGAL")
        if self.sign_names is not None and params["SignName"] not in self.sign_names:
            return self._error("isv.SMS_SIGNATURE_ILLEGAL")
        if self.templates is not None and params["TemplateCode"] not in self.templates:
            return self._error("isv.SMS_TEMPLATE_ILLEGAL")
        try:
            variables = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            self.problem("TemplateParam is not JSON")
            return self._error("isv.INVALID_JSON_PARAM")
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            self.problem("TemplateParam must be a JSON object of strings")
            return self._error("isv.INVALID_JSON_PARAM")
        if self.templates is not None:
            if any(name not in variables for name in self.templates[params["TemplateCode"]]):
                return self._error("isv.TEMPLATE_MISSING_PARAMETERS")
        self.sent.append(params)
        return 200, {"Message": "OK", "RequestId": str(uuid.uuid4()).upper(),
                     "BizId": f"{next(self._biz)}^0", "Code": "OK"}


# ============================================================ Tencent Cloud SMS

def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tc3_expected_signature(secret_key: str, *, method: str, signed_headers: list[str],
                           headers: Mapping[str, str], payload: bytes, query: str,
                           timestamp: str, date: str, service: str) -> str:
    canonical_headers = "".join(f"{h}:{headers.get(h, '').strip().lower()}\n" for h in signed_headers)
    canonical_request = (f"{method}\n/\n{query}\n{canonical_headers}\n"
                         f"{';'.join(signed_headers)}\n{_sha256_hex(payload)}")
    string_to_sign = (f"TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n"
                      f"{_sha256_hex(canonical_request.encode('utf-8'))}")
    key = ("TC3" + secret_key).encode("utf-8")
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


TENCENT_MESSAGES = {
    "AuthFailure.SignatureFailure": "The provided credentials could not be validated. "
                                    "Please check your signature is correct.",
    "AuthFailure.SecretIdNotFound": "The SecretId is not found, please ensure that your "
                                    "SecretId is correct.",
    "AuthFailure.SignatureExpire": "Signature expired. Timestamp and server time cannot differ "
                                   "by more than five minutes.",
    "AuthFailure.InvalidAuthorization": "Authorization header is invalid.",
    "InvalidAction": "The action requested is invalid.",
    "NoSuchVersion": "The requested version does not exist.",
    "MissingParameter": "The parameter is missing.",
    "InvalidParameter": "The parameter format is incorrect.",
    "FailedOperation.SignatureIncorrectOrUnapproved": "signature format is incorrect or "
                                                      "signature is not approved",
    "FailedOperation.TemplateIncorrectOrUnapproved": "template is not approved or request "
                                                     "content does not match the approved template content",
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": "the number of template parameters "
                                                                "does not match the approved template",
    "FailedOperation.PhoneNumberInBlacklist": "the mobile number is in the blocklist",
    "InvalidParameterValue.IncorrectPhoneNumber": "invalid mobile number",
    "InvalidParameterValue.SdkAppIdNotExist": "SdkAppId does not exist",
    "LimitExceeded.PhoneNumberDailyLimit": "the number of SMS messages sent from a single mobile "
                                           "number every day exceeds the upper limit",
    "InternalError.Timeout": "request timed out",
}


class FakeTencentSms(FakeProvider):
    """SMS API 3.0 SendSms 2021-01-11. `templates` maps approved TemplateId -> parameter
    count (None accepts any); `blacklist` holds E.164 numbers answered per-number with
    FailedOperation.PhoneNumberInBlacklist; `now` enables the 5-minute skew check."""

    def __init__(self, secret_id: str = "AKIDFAKEFAKEFAKEFAKE", secret_key: str = "fake-secret-key",
                 *, sdk_app_id: str = "1400006666", sign_names: Iterable[str] | None = None,
                 templates: Mapping[str, int] | None = None, blacklist: Iterable[str] = (),
                 now: Callable[[], datetime] | None = None):
        super().__init__()
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.sdk_app_id = sdk_app_id
        self.sign_names = set(sign_names) if sign_names is not None else None
        self.templates = dict(templates) if templates is not None else None
        self.blacklist = set(blacklist)
        self.now = now
        self.sent: list[dict] = []
        self._serial = itertools.count(1045710669157053657849499619)

    def env(self, *, templates: Mapping | None = None, sign_name: str = "三长办") -> dict[str, str]:
        return {
            "SANZHANG_TENCENT_SMS_SECRET_ID": self.secret_id,
            "SANZHANG_TENCENT_SMS_SECRET_KEY": self.secret_key,
            "SANZHANG_TENCENT_SMS_SDK_APP_ID": self.sdk_app_id,
            "SANZHANG_TENCENT_SMS_SIGN_NAME": sign_name,
            "SANZHANG_TENCENT_SMS_ENDPOINT": self.url,
            "SANZHANG_TENCENT_SMS_TEMPLATES": json.dumps(templates or {}, ensure_ascii=False),
        }

    def operation(self, req):
        return "send"

    def _error(self, code: str, message: str | None = None):
        return 200, {"Response": {"Error": {"Code": code,
                                            "Message": message or TENCENT_MESSAGES.get(code, code)},
                                  "RequestId": str(uuid.uuid4())}}

    def _check_auth(self, req) -> str | None:
        """Error code when the request is not properly signed, else None."""
        auth = req.headers.get("authorization", "")
        m = re.fullmatch(r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d\d-\d\d)/([a-z]+)/tc3_request, "
                         r"SignedHeaders=([a-z0-9;\-]+), Signature=([0-9a-f]{64})", auth)
        if not m:
            self.problem(f"malformed Authorization header: {auth[:60]!r}")
            return "AuthFailure.InvalidAuthorization"
        secret_id, date, service, signed, signature = m.groups()
        signed_headers = signed.split(";")
        if "content-type" not in signed_headers or "host" not in signed_headers:
            self.problem("SignedHeaders must include content-type and host")
            return "AuthFailure.InvalidAuthorization"
        if service != "sms":
            self.problem(f"credential scope service {service!r}, expected 'sms'")
            return "AuthFailure.SignatureFailure"
        timestamp = req.headers.get("x-tc-timestamp", "")
        if not timestamp.isdigit():
            self.problem("X-TC-Timestamp missing or not an integer")
            return "MissingParameter"
        if datetime.fromtimestamp(int(timestamp), timezone.utc).strftime("%Y-%m-%d") != date:
            self.problem("credential date is not the UTC date of X-TC-Timestamp")
            return "AuthFailure.SignatureFailure"
        if secret_id != self.secret_id:
            return "AuthFailure.SecretIdNotFound"
        expected = tc3_expected_signature(
            self.secret_key, method=req.method, signed_headers=signed_headers, headers=req.headers,
            payload=req.body, query=urllib.parse.urlencode(req.query),
            timestamp=timestamp, date=date, service=service)
        if not hmac.compare_digest(expected, signature):
            return "AuthFailure.SignatureFailure"
        if self.now is not None and abs(self.now().timestamp() - int(timestamp)) > 300:
            return "AuthFailure.SignatureExpire"
        return None

    def handle(self, req, op, scripted):
        if req.method != "POST" or req.path != "/":
            self.problem(f"unexpected {req.method} {req.path}")
            return self._error("InvalidAction")
        if not req.headers.get("content-type", "").startswith("application/json"):
            self.problem("Content-Type is not application/json")
            return self._error("InvalidParameter")
        if req.headers.get("x-tc-action") != "SendSms":
            self.problem(f"X-TC-Action {req.headers.get('x-tc-action')!r}")
            return self._error("InvalidAction")
        if req.headers.get("x-tc-version") != "2021-01-11":
            self.problem(f"X-TC-Version {req.headers.get('x-tc-version')!r}")
            return self._error("NoSuchVersion")
        if not req.headers.get("x-tc-region"):
            self.problem("X-TC-Region missing")
            return self._error("MissingParameter", "The parameter `Region` is missing.")
        auth_error = self._check_auth(req)
        if auth_error:
            return self._error(auth_error)
        try:
            body = req.json()
        except ValueError:
            self.problem("body is not JSON")
            return self._error("InvalidParameter")
        numbers = body.get("PhoneNumberSet")
        params = body.get("TemplateParamSet", [])
        if not (isinstance(numbers, list) and numbers and all(isinstance(n, str) for n in numbers)):
            self.problem("PhoneNumberSet must be a non-empty list of strings")
            return self._error("MissingParameter", "The parameter `PhoneNumberSet` is missing.")
        if not (isinstance(params, list) and all(isinstance(p, str) for p in params)):
            self.problem("TemplateParamSet must be a list of strings")
            return self._error("InvalidParameter")
        for name in ("SmsSdkAppId", "TemplateId", "SignName"):
            if not isinstance(body.get(name), str) or not body[name]:
                self.problem(f"{name} missing or not a string")
                return self._error("MissingParameter", f"The parameter `{name}` is missing.")
        if body["SmsSdkAppId"] != self.sdk_app_id:
            return self._error("InvalidParameterValue.SdkAppIdNotExist")

        if scripted and scripted.code and not scripted.extra.get("per_number"):
            return self._error(str(scripted.code), scripted.message)
        if self.sign_names is not None and body["SignName"] not in self.sign_names:
            return self._error("FailedOperation.SignatureIncorrectOrUnapproved")
        if self.templates is not None:
            if body["TemplateId"] not in self.templates:
                return self._error("FailedOperation.TemplateIncorrectOrUnapproved")
            if len(params) != self.templates[body["TemplateId"]]:
                return self._error("FailedOperation.TemplateParamSetNotMatchApprovedTemplate")

        statuses = []
        for number in numbers:
            code = "Ok"
            if scripted and scripted.code:
                code = str(scripted.code)
            elif not re.fullmatch(r"\+861[3-9]\d{9}", number):
                code = "InvalidParameterValue.IncorrectPhoneNumber"
            elif number in self.blacklist:
                code = "FailedOperation.PhoneNumberInBlacklist"
            ok = code == "Ok"
            statuses.append({
                "SerialNo": f"2433:{next(self._serial)}" if ok else "",
                "PhoneNumber": number,
                "Fee": 1 if ok else 0,
                "SessionContext": body.get("SessionContext", ""),
                "Code": code,
                "Message": "send success" if ok else TENCENT_MESSAGES.get(code, code),
                "IsoCode": "CN",
            })
        if any(s["Code"] == "Ok" for s in statuses):
            self.sent.append(body)
        return 200, {"Response": {"SendStatusSet": statuses, "RequestId": str(uuid.uuid4())}}


# ============================================================ WeChat family

class _TokenIssuer:
    """Access tokens as the WeChat platforms hand them out: opaque, with a lifetime."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.valid: set[str] = set()
        self.expired: set[str] = set()
        self._n = itertools.count(1)

    def issue(self) -> str:
        token = f"{self.prefix}-{next(self._n)}-{uuid.uuid4().hex}"
        self.valid.add(token)
        return token

    def expire_all(self):
        self.expired |= self.valid
        self.valid.clear()

    def revoke_all(self):
        self.valid.clear()


def _rid() -> str:
    return f"rid: {uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}"


class FakeWeCom(FakeProvider):
    """WeCom gettoken + message/send (text). `users` are the userids visible to the app
    (None accepts any)."""

    operations = ("token", "send")

    def __init__(self, corp_id: str = "wwfakecorp0000001", corp_secret: str = "fake-corp-secret",
                 agent_id: int = 1000002, *, users: Iterable[str] | None = None):
        super().__init__()
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.agent_id = agent_id
        self.users = set(users) if users is not None else None
        self.tokens = _TokenIssuer("wecom")
        self.sent: list[dict] = []
        self._msgid = itertools.count(1)

    def env(self) -> dict[str, str]:
        return {
            "SANZHANG_WECOM_CORP_ID": self.corp_id,
            "SANZHANG_WECOM_CORP_SECRET": self.corp_secret,
            "SANZHANG_WECOM_AGENT_ID": str(self.agent_id),
            "SANZHANG_WECOM_ENDPOINT": self.url,
        }

    def expire_tokens(self):
        """Every token issued so far now answers 42001 (expired)."""
        self.tokens.expire_all()

    def revoke_tokens(self):
        """Every token issued so far now answers 40014 (invalid)."""
        self.tokens.revoke_all()

    @property
    def token_calls(self) -> int:
        return len(self.calls("token"))

    def operation(self, req):
        return {"/cgi-bin/gettoken": "token", "/cgi-bin/message/send": "send"}.get(req.path)

    @staticmethod
    def _error(errcode: int, errmsg: str):
        return 200, {"errcode": errcode,
                     "errmsg": f"{errmsg}, hint: [{int(time.time())}_{uuid.uuid4().hex[:6]}], "
                               f"from ip: 127.0.0.1, more info at "
                               f"https://open.work.weixin.qq.com/devtool/query?e={errcode}"}

    def handle(self, req, op, scripted):
        if op == "token":
            return self._gettoken(req, scripted)
        if op == "send":
            return self._send(req, scripted)
        self.problem(f"unexpected {req.method} {req.path}")
        return 404, b"<html>404 Not Found</html>"

    def _gettoken(self, req, scripted):
        if req.method != "GET":
            self.problem("gettoken must be GET")
        if req.query.get("corpid") != self.corp_id:
            return self._error(40013, "invalid corpid")
        if req.query.get("corpsecret") != self.corp_secret:
            return self._error(40001, "invalid secret")
        if scripted and scripted.code is not None:
            return self._error(int(scripted.code), scripted.message or "scripted error")
        return 200, {"errcode": 0, "errmsg": "ok", "access_token": self.tokens.issue(),
                     "expires_in": 7200}

    def _send(self, req, scripted):
        if req.method != "POST":
            self.problem("message/send must be POST")
        token = req.query.get("access_token")
        if not token:
            return self._error(41001, "access_token missing")
        if token in self.tokens.expired:
            return self._error(42001, "access_token expired")
        if token not in self.tokens.valid:
            return self._error(40014, "invalid access_token")
        try:
            body = req.json()
        except ValueError:
            self.problem("body is not JSON")
            return self._error(47001, "data format error")
        if body.get("msgtype") != "text":
            self.problem(f"msgtype {body.get('msgtype')!r}, expected 'text'")
            return self._error(40008, "invalid message type")
        if body.get("agentid") != self.agent_id:
            self.problem(f"agentid {body.get('agentid')!r}, expected {self.agent_id}")
            return self._error(40056, "invalid agentid")
        content = (body.get("text") or {}).get("content")
        if not isinstance(content, str) or not content:
            self.problem("text.content missing")
            return self._error(44004, "empty content")
        if body.get("safe", 0) not in (0, 1, 2):
            self.problem("safe must be 0, 1 or 2")
        if scripted and scripted.code is not None:
            return self._error(int(scripted.code), scripted.message or "scripted error")
        users = [u for u in str(body.get("touser", "")).split("|") if u]
        invalid = [u for u in users if self.users is not None and u not in self.users]
        if not users or len(invalid) == len(users):
            return self._error(81013, "user & party & tag all invalid")
        self.sent.append(body)
        return 200, {"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(invalid),
                     "msgid": f"fake-msgid-{next(self._msgid)}"}


THING_LIMITS = {"thing": 20, "name": 10, "phrase": 5, "character_string": 32, "number": 32,
                "letter": 32, "phone_number": 17, "car_number": 8}


class FakeWeChatMp(FakeProvider):
    """Official-account token + subscribe/bizsend. `templates` maps template_id -> data keys;
    `subscribers` the openids that accepted a subscription (None accepts any)."""

    operations = ("token", "send")

    def __init__(self, app_id: str = "wxfakeappid000001", app_secret: str = "fake-app-secret",
                 *, templates: Mapping[str, Iterable[str]] | None = None,
                 subscribers: Iterable[str] | None = None):
        super().__init__()
        self.app_id = app_id
        self.app_secret = app_secret
        self.templates = {k: list(v) for k, v in templates.items()} if templates is not None else None
        self.subscribers = set(subscribers) if subscribers is not None else None
        self.tokens = _TokenIssuer("mp")
        self.sent: list[dict] = []

    def env(self, *, templates: Mapping | None = None, page: str = "") -> dict[str, str]:
        return {
            "SANZHANG_WECHAT_MP_APP_ID": self.app_id,
            "SANZHANG_WECHAT_MP_APP_SECRET": self.app_secret,
            "SANZHANG_WECHAT_MP_ENDPOINT": self.url,
            "SANZHANG_WECHAT_MP_TEMPLATES": json.dumps(templates or {}, ensure_ascii=False),
            "SANZHANG_WECHAT_MP_PAGE": page,
        }

    def expire_tokens(self):
        self.tokens.expire_all()

    def revoke_tokens(self):
        self.tokens.revoke_all()

    @property
    def token_calls(self) -> int:
        return len(self.calls("token"))

    def operation(self, req):
        return {"/cgi-bin/token": "token", "/cgi-bin/message/subscribe/bizsend": "send"}.get(req.path)

    @staticmethod
    def _error(errcode: int, errmsg: str):
        return 200, {"errcode": errcode, "errmsg": f"{errmsg} {_rid()}"}

    def handle(self, req, op, scripted):
        if op == "token":
            return self._token(req, scripted)
        if op == "send":
            return self._send(req, scripted)
        self.problem(f"unexpected {req.method} {req.path}")
        return 404, b"<html>404 Not Found</html>"

    def _token(self, req, scripted):
        if req.method != "GET":
            self.problem("token must be GET")
        if req.query.get("grant_type") != "client_credential":
            self.problem(f"grant_type {req.query.get('grant_type')!r}")
            return self._error(40002, "invalid grant_type")
        if req.query.get("appid") != self.app_id:
            return self._error(40013, "invalid appid")
        if req.query.get("secret") != self.app_secret:
            return self._error(40125, "invalid appsecret")
        if scripted and scripted.code is not None:
            return self._error(int(scripted.code), scripted.message or "scripted error")
        return 200, {"access_token": self.tokens.issue(), "expires_in": 7200}

    def _send(self, req, scripted):
        if req.method != "POST":
            self.problem("bizsend must be POST")
        token = req.query.get("access_token")
        if not token:
            return self._error(41001, "access_token missing")
        if token in self.tokens.expired:
            return self._error(42001, "access_token expired")
        if token not in self.tokens.valid:
            return self._error(40001, "invalid credential, access_token is invalid or not latest")
        try:
            body = req.json()
        except ValueError:
            self.problem("body is not JSON")
            return self._error(47001, "data format error")
        if not body.get("touser"):
            self.problem("touser missing")
            return self._error(40003, "invalid openid")
        if not body.get("template_id"):
            self.problem("template_id missing")
            return self._error(40037, "invalid template_id")
        data = body.get("data")
        if not isinstance(data, dict):
            self.problem("data must be an object")
            return self._error(47003, "argument invalid! data is invalid")
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, str) or not value:
                self.problem(f"data.{key}.value missing or not a string")
                return self._error(47003, f"argument invalid! data.{key}.value is emtpy")
            kind = re.sub(r"\d+$", "", key)
            if kind in THING_LIMITS and len(value) > THING_LIMITS[kind]:
                self.problem(f"data.{key}.value longer than {THING_LIMITS[kind]}")
                return self._error(47003, f"argument invalid! data.{key}.value invalid")
        if "page" in body and not isinstance(body["page"], str):
            self.problem("page must be a string")
        if scripted and scripted.code is not None:
            return self._error(int(scripted.code), scripted.message or "scripted error")
        if self.templates is not None:
            keys = self.templates.get(body["template_id"])
            if keys is None:
                return self._error(40037, "invalid template_id")
            if set(keys) != set(data):
                return self._error(47003, f"argument invalid! data.{sorted(set(keys) ^ set(data))[0]}"
                                          f".value is emtpy")
        if self.subscribers is not None and body["touser"] not in self.subscribers:
            return self._error(43101, "user refuse to accept the msg")
        self.sent.append(body)
        return 200, {"errcode": 0, "errmsg": "ok"}
