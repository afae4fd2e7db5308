"""Abuse suite: the walls between tenants and roles, mass assignment, resource limits and the SMS budget,
all against one seeded embedded system (``World``) with two townships in two cities.

- Tenancy and role matrix: every operation of the OpenAPI document with a path parameter is called
  with every foreign credential (another township's staff, client app, lead and city staff; another
  post's lead; another department; a neighbouring township's staff where the city is not shared
  with it by design), once with the owner's real ids and once with well-formed random ids. Every
  call is refused (401/403/404), and the real and the random id answer the same status and the
  same body: a foreign credential cannot tell whether something exists.
- Mass assignment: every JSON request body of the document, made valid from its own schema, with
  one server-owned field added (township, status, assignee, version, _id, outbox, …) is a 422 that
  names the field.
- Resource limits: an oversized body is a 413 with a JSON body (Open311's own format under
  /open311/); page sizes far past the maximum are 422 naming the parameter; a flood of writes from
  one credential (or one address without one) is a 429 with Retry-After; error bodies that quote
  the request mask phone numbers.
- SMS budget: reports submitted through the API with an SMS channel configured never make the
  provider's fake receive more segments than the township's hourly budget.
"""
from __future__ import annotations

import copy
import io
import json
import random
import re
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from services.dispatch import transitions
from shared.domain.ids import case_id_for
from services.dispatch.demo_roster import demo_roster_csv
from shared.auth import Principal
from shared.cli import _load_demo
from shared.clock import FakeClock
from shared.runtime import SERVICES, Runtime
from shared.web import create_app
from tests.support.runtime import ADMIN_HEADERS, make_settings
from tests.support.escalation import MATRIX_CSV
from tests.support.abuse import (A, ADDRESS, B, C, CITY_A, CITY_B, OTHER_ADDRESS, START, World, _document, bearer, credential_for,
                                 operations, png)



# ================================================================================ the document

def resolve(spec: dict, schema: dict) -> dict:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


# Values for required fields whose schema alone does not make a valid one (patterns, references).
FIELD_VALUES = {
    "township": A, "category": "housing", "description": "门口路灯坏了一个星期，晚上出行不安全",
    "reporter_phone": "13800000001", "channel": "mini_program", "address": ADDRESS, "target": "ABCD2345",
    "phone_last4": "0001", "rating": "满意", "quarter": "2026Q4", "card": "none", "outcome": "reached",
    "reason": "beyond_ability", "unit_id": "u-0000000000000000", "into": "0" * 32, "department_id": f"{CITY_A}-jtj",
    "lead": f"{CITY_A}-jtj", "ruling": "经核查属本部门职责", "resolution": "已完成维修", "note": "已联系住户",
    "text": "养老认证怎么弄", "question": "养老认证怎么做？", "answer": "带身份证到村委会办理", "name": "测试名称",
    "code": "430382199", "phone": "13800000002", "household_id": "h-0000", "mode": "phone",
    "url": "https://zjj.example.gov.cn/hook", "working_days": 5, "evidence": ["https://example.gov.cn/duty.pdf"],
    "templates": {}, "label": "测试",
}


def example(spec: dict, schema: dict, name: str | None = None):
    """A valid value for ``schema``: the field's known value, its example, or one built from its type."""
    schema = resolve(spec, schema)
    if name in FIELD_VALUES and FIELD_VALUES[name] in schema.get("enum", [FIELD_VALUES[name]]):
        return copy.deepcopy(FIELD_VALUES[name])
    if "example" in schema:
        return copy.deepcopy(schema["example"])
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return {key: example(spec, prop, key) for key, prop in props.items()
                if key in required or "example" in resolve(spec, prop)}
    if kind == "array":
        return [example(spec, schema.get("items", {}))] if schema.get("minItems") else []
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return True
    return "测试内容"


def json_body_schema(operation: dict) -> dict | None:
    content = (operation.get("requestBody") or {}).get("content") or {}
    return content.get("application/json", {}).get("schema") if list(content) == ["application/json"] else None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World.build(tmp_path_factory.mktemp("abuse"))
    yield world
    world.stop()


# ================================================================================ tenancy and roles

def _hex(n: int) -> str:
    return uuid.uuid4().hex[:n]


def random_ids() -> dict[str, str]:
    """Well-formed ids that name nothing, for each path parameter."""
    tracking = "".join(random.choice("23456789ABCDEFGHJKMNPQRSTUVWXYZ") for _ in range(8))
    shop = {"item_id": _hex(16), "exchange_id": _hex(32)}          # 积分超市
    return {**shop, "account_id": "acc-" + _hex(20), "ref": tracking, "service_request_id": tracking, "photo_id": _hex(32), "code": "430382199",
            "entry": "no-such-entry", "followup_id": _hex(32), "case_id": _hex(32), "supervision_id": _hex(12),
            "card_id": _hex(32), "unit_id": "u-" + _hex(16), "city": "430399", "department_id": f"{CITY_A}-nosuch",
            "key_id": "dk_" + _hex(16), "extension_id": "x" + _hex(10), "fmt": "json", "contact_id": "c-" + _hex(16)}


def real_ids(world: World, path: str) -> dict[str, str]:
    ids = {**world.ids, "fmt": "json"}
    if path.startswith(("/api/v1/department/", "/api/v1/referrals/")):
        ids["case_id"] = world.ids["referred_case_id"]
    return ids


# Public by design, or not authenticated by tenants' credentials at all.
NOT_TENANT_SCOPED = {
    "/open311/v2/services/{service_code}.{fmt}": "Open311 service definitions are public (security: [])",
    "/open311/v2/discovery.{fmt}": "public", "/open311/v2/services.{fmt}": "public",
    "/api/v1/receipts/{provider}": "SMS providers' receipts: authenticated by the shared receipt secret",
    "/api/v1/receipts/{provider}/{key}": "SMS providers' receipts: authenticated by the shared receipt secret",
}
# Who else may legitimately use another caller's resource (everyone else is foreign):
ALLOWED = {
    # Any credential of the township reads the resident's view, its photos and its Open311 record.
    ("lead_a_other", "GET /api/v1/reports/{ref}"), ("lead_a_other", "GET /api/v1/photos/{photo_id}"),
    ("lead_a_other", "GET /open311/v2/requests/{service_request_id}.{fmt}"),
    # Township staff of the city read its departments and matrix, to choose a lead department.
    ("staff_c", "GET /api/v1/cities/{city}"), ("staff_c", "GET /api/v1/cities/{city}/departments"),
    ("staff_c", "GET /api/v1/departments/{department_id}"), ("staff_c", "GET /api/v1/cities/{city}/matrix"),
}


def knows_existence(who: str, path: str) -> bool:
    """Callers who may know a resource exists without being allowed to act on it: another lead of
    the township reads its reports (GET /reports/{ref}); the city's township staff read its
    departments. They are still refused — existing and random ids may answer differently."""
    if who == "lead_a_other":
        return path.startswith(("/api/v1/reports/{ref}", "/api/v1/photos/", "/open311/"))
    if who == "staff_c":
        return path.startswith(("/api/v1/cities/{city}", "/api/v1/departments/{department_id}"))
    return False


FOREIGN = ("anonymous", "forged", "staff_b", "client_b", "lead_b", "city_staff_b", "staff_c", "lead_a_other",
           "dept_jtj", "dept_b_zjj")


def tenancy_operations():
    spec = _document()
    for method, path, operation in operations(spec):
        ids = set(re.findall(r"{(\w+)}", path)) - {"fmt"}      # a format names nothing
        if ids and path not in NOT_TENANT_SCOPED:
            yield pytest.param(method, path, id=f"{method} {path}")


WHOLE_DOCUMENTS = {"PUT /api/v1/townships/{code}/sla-policy", "PUT /api/v1/townships/{code}/rules"}


def valid_body(world: World, method: str, path: str) -> dict:
    """A JSON body the operation's schema accepts: built from the schema, or — for the documents
    replaced whole — what GET gives (without the read-only keys)."""
    spec = _document()
    schema = json_body_schema(spec["paths"][path][method.lower()])
    if f"{method} {path}" in WHOLE_DOCUMENTS:
        current = world.web.get(path.replace("{code}", A), headers=world.creds["operator"]).json
        accepted = resolve(spec, schema).get("properties", {})
        return {k: v for k, v in current.items() if k in accepted}
    return example(spec, schema)


def call(world: World, method: str, path: str, ids: dict, headers: dict, jurisdiction: str | None = None):
    """One request to ``path`` with ``ids`` in place and a valid body for the operation."""
    spec = _document()
    operation = spec["paths"][path][method.lower()]
    url = path
    for name in re.findall(r"{(\w+)}", path):
        url = url.replace("{" + name + "}", ids[name])
    query = {}
    for param in operation.get("parameters", []):
        if param.get("in") == "query" and param.get("required"):
            query[param["name"]] = jurisdiction if param["name"] in ("jurisdiction_id", "township") and jurisdiction \
                else example(spec, param.get("schema", {}), param["name"])
    kwargs: dict = {"headers": headers, "query_string": query}
    content = (operation.get("requestBody") or {}).get("content") or {}
    if "application/json" in content and list(content) == ["application/json"]:
        kwargs["json"] = valid_body(world, method, path)
    elif "multipart/form-data" in content and "text/csv" in content:        # a spreadsheet import
        kwargs.update(data=demo_roster_csv(), content_type="text/csv", query_string={**query, "filename": "x.csv"})
    elif "multipart/form-data" in content:                                   # a photo
        kwargs.update(data={"file": (io.BytesIO(png()), "p.png")}, content_type="multipart/form-data")
    elif "application/x-www-form-urlencoded" in content:                     # Open311
        kwargs["data"] = {"jurisdiction_id": jurisdiction or A, "service_code": "road", "phone": "13800000001",
                          "description": "路面塌陷一个坑"}
    return world.web.open(url, method=method, **kwargs)


def normalised(resp, *ids: str) -> str:
    text = resp.get_data(as_text=True)
    for value in sorted({i for i in ids if i}, key=len, reverse=True):
        text = text.replace(value, "<id>")
    return text


@pytest.mark.parametrize("method,path", list(tenancy_operations()))
def test_a_foreign_credential_is_refused_and_learns_nothing(world, method, path):
    label = f"{method} {path}"
    real, fake = real_ids(world, path), random_ids()
    names = re.findall(r"{(\w+)}", path)
    if method == "GET":      # the real ids name something: its owner (the operator here) reads it
        owner = call(world, method, path, real, credential_for(world, path)
                     if "/department" in path or path.endswith("/contact") else world.creds["operator"],
                     jurisdiction=A)
        assert owner.status_code == 200, (label, owner.status_code, owner.get_data(as_text=True)[:300])
    creds = {**world.creds, "anonymous": {}, "forged": bearer("sz1.forged.token")}
    for who in FOREIGN:
        if (who, label) in ALLOWED:
            continue
        own = {"staff_b": B, "client_b": B, "lead_b": B, "city_staff_b": B, "staff_c": C}.get(who, A)
        existing = call(world, method, path, real, creds[who], jurisdiction=own)
        missing = call(world, method, path, fake, creds[who], jurisdiction=own)
        where = f"{label} as {who}"
        assert existing.status_code in (401, 403, 404), (where, existing.status_code, existing.get_data(as_text=True)[:300])
        assert missing.status_code in (401, 403, 404), (where, missing.status_code, missing.get_data(as_text=True)[:300])
        if knows_existence(who, path):
            continue
        assert existing.status_code == missing.status_code, (where, existing.status_code, missing.status_code,
                                                             existing.get_data(as_text=True)[:200],
                                                             missing.get_data(as_text=True)[:200])
        used = [real[n] for n in names] + [fake[n] for n in names]
        assert normalised(existing, *used) == normalised(missing, *used), where


def test_error_bodies_that_echo_input_mask_phone_numbers(world):
    """An error may quote what was sent (a bad status, a duration out of range): a phone number in
    it comes back masked, in Open311's format and in the API's own."""
    resp = world.web.get("/open311/v2/requests.json", query_string={"jurisdiction_id": A, "status": "13800000001"},
                         headers=world.creds["client_a"])
    assert resp.status_code == 400 and "138****0001" in resp.json[0]["description"]
    policy = world.web.get(f"/api/v1/townships/{A}/sla-policy", headers=world.creds["staff_a"]).json
    policy["tiers"]["general"]["levels"]["township"]["accept"] = "13912345678.5s"
    resp = world.web.put(f"/api/v1/townships/{A}/sla-policy", json=policy, headers=world.creds["staff_a"])
    assert resp.status_code == 422
    assert "139****5678" in resp.get_data(as_text=True) and "13912345678" not in resp.get_data(as_text=True)


# ================================================================================ mass assignment

SERVER_OWNED = ("township", "status", "assignee", "version", "_id", "id", "outbox", "seen", "outbox_due",
                "created_at", "updated_at", "role", "case_id", "tracking_no", "level", "department_id", "budget_taken")
# Bodies that are not this API's own: Open311's form parameters are read by name (anything else is
# ignored, as GeoReport v2 clients expect) and the SMS providers' receipts are read tolerantly.
FOREIGN_FORMATS = {"POST /open311/v2/requests.{fmt}", "POST /api/v1/receipts/{provider}",
                   "POST /api/v1/receipts/{provider}/{key}"}


def json_body_operations():
    spec = _document()
    for method, path, operation in operations(spec):
        if json_body_schema(operation) is not None and f"{method} {path}" not in FOREIGN_FORMATS:
            yield pytest.param(method, path, id=f"{method} {path}")


@pytest.mark.parametrize("method,path", list(json_body_operations()))
def test_server_owned_fields_in_a_body_are_refused_by_name(world, method, path):
    spec = _document()
    schema = resolve(spec, json_body_schema(spec["paths"][path][method.lower()]))
    ids = real_ids(world, path)
    url = path
    for name in re.findall(r"{(\w+)}", path):
        url = url.replace("{" + name + "}", ids[name])
    headers = credential_for(world, path)
    body = valid_body(world, method, path)
    own = set(schema.get("properties", {}))
    tried = 0
    for field_ in SERVER_OWNED:
        if field_ in own:
            continue
        resp = world.web.open(url, method=method, json={**body, field_: "smuggled"}, headers=headers)
        assert resp.status_code == 422, (method, path, field_, resp.status_code, resp.get_data(as_text=True)[:300])
        # Only the smuggled field is wrong: the rest of the body was valid, the field is named.
        assert resp.json["errors"]["json"] == {field_: ["Unknown field."]}, (method, path, field_, resp.json)
        tried += 1
    # One level down: a nested object refuses them too.
    for prop, sub in schema.get("properties", {}).items():
        sub = resolve(spec, sub)
        if sub.get("type") == "object" and sub.get("properties"):
            inner = body.get(prop) if isinstance(body.get(prop), dict) else example(spec, sub)
            resp = world.web.open(url, method=method, json={**body, prop: {**inner, "status": "x"}},
                                  headers=headers)
            assert resp.status_code == 422 and "status" in resp.json["errors"]["json"][prop], (path, prop, resp.json)
            tried += 1
    assert tried


# ================================================================================ resource limits

def write_operations_with_bodies():
    spec = _document()
    for method, path, operation in operations(spec):
        if "requestBody" in operation and not path.startswith("/api/v1/receipts/"):
            yield pytest.param(method, path, id=f"{method} {path}")


@pytest.mark.parametrize("method,path", list(write_operations_with_bodies()))
def test_an_oversized_body_is_413_in_the_operations_error_format(world, method, path):
    """Bigger than every limit (1 MiB by default; 5 MiB photos; 20 MiB rosters only after the 1 MiB
    request limit), so no handler may accept it — and the refusal is a body the client can parse."""
    spec = _document()
    content_type = next(iter(spec["paths"][path][method.lower()]["requestBody"]["content"]))
    ids = real_ids(world, path)
    url = path
    for name in re.findall(r"{(\w+)}", path):
        url = url.replace("{" + name + "}", ids[name])
    body = b"x" * (6 * 1024 * 1024)
    if content_type == "multipart/form-data":
        content_type = "multipart/form-data; boundary=XyZ"
    query = {"jurisdiction_id": A} if path.startswith("/open311/") else \
        {"filename": "x.csv"} if "import" in path or "roster" in path else {}
    resp = world.web.open(url, method=method, data=body, content_type=content_type,
                          headers=credential_for(world, path), query_string=query)
    assert resp.status_code == 413, (method, path, resp.status_code, resp.get_data(as_text=True)[:300])
    if path.startswith("/open311/"):
        assert resp.json == [{"code": 413, "description": "请求体过大"}]
    else:
        assert resp.is_json and resp.json["code"] == 413 and resp.json["message"]


def paged_operations():
    spec = _document()
    for method, path, operation in operations(spec):
        names = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        for name in sorted(names & {"limit", "skip", "offset"}):
            yield pytest.param(method, path, name, id=f"{method} {path} {name}")


@pytest.mark.parametrize("method,path,name", list(paged_operations()))
def test_huge_pages_are_refused_naming_the_parameter(world, method, path, name):
    ids = real_ids(world, path)
    url = path
    for param in re.findall(r"{(\w+)}", path):
        url = url.replace("{" + param + "}", ids[param])
    query = {name: 100_000 if name == "limit" else 10**9}
    if path in ("/api/v1/deliveries", "/api/v1/deliveries/dead"):
        query["township"] = A
    resp = world.web.open(url, method=method, query_string=query, headers=credential_for(world, path))
    assert resp.status_code in (400, 422), (path, name, resp.status_code)
    assert name in resp.json["errors"]["query"], resp.json


def test_the_page_sizes_in_the_document_have_a_maximum():
    spec = _document()
    for method, path, operation in operations(spec):
        for param in operation.get("parameters", []):
            if param.get("in") == "query" and param["name"] in ("limit", "skip", "offset"):
                assert param["schema"].get("maximum"), (method, path, param["name"])


# ================================================================================ floods

@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    world = World.build(tmp_path_factory.mktemp("flood"), seed=False, rate_limit="5/60")
    yield world
    world.stop()


def kb_match(world: World, headers: dict, **kw):
    """A write (POST) that changes nothing: the knowledge base's trial answer."""
    return world.web.post(f"/api/v1/townships/{A}/kb/match", json={"text": "养老认证怎么弄"}, headers=headers, **kw)


def test_a_flood_of_writes_from_one_credential_is_429_with_retry_after(limited):
    staff = limited.token("staff", (A,), name="洪水测试")
    assert [kb_match(limited, staff).status_code for _ in range(5)] == [200] * 5
    refused = kb_match(limited, staff)
    assert refused.status_code == 429 and refused.is_json
    assert refused.json["code"] == 429 and "秒后再试" in refused.json["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 12        # 60 s / 5 per bucket token
    # The same principal with a freshly issued token shares the bucket; another principal does not.
    assert kb_match(limited, limited.token("staff", (A,), name="洪水测试")).status_code == 429
    assert kb_match(limited, limited.token("staff", (A,), name="另一位干事")).status_code == 200
    # Reads are not limited.
    assert limited.web.get(f"/api/v1/townships/{A}/kb", headers=staff).status_code == 200


def test_a_large_photo_is_not_refused_by_the_limiter(limited):
    """The limiter never reads a form (that would apply the 1 MiB default before the photo
    endpoint raises its own limit to 5 MB)."""
    report = limited.report(A, ADDRESS, headers=limited.token("client", (A,), name="照片测试"))
    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * (2 * 1024 * 1024) + b"\xff\xd9"
    staff = limited.creds["staff_a"]["Authorization"].removeprefix("Bearer ")
    resp = limited.web.post(f"/api/v1/reports/{report['id']}/photos", content_type="multipart/form-data",
                            data={"file": (io.BytesIO(jpeg), "a.jpg"), "api_key": staff})   # the key in the form
    assert resp.status_code == 201, resp.get_data(as_text=True)[:300]


def test_the_bucket_refills_with_time(limited):
    limiter = limited.app.extensions["sanzhang.rate_limiter"]
    now = [1000.0]
    real_now, limiter._now = limiter._now, lambda: now[0]
    try:
        staff = limited.token("staff", (A,), name="补充测试")
        assert all(kb_match(limited, staff).status_code == 200 for _ in range(5))
        assert kb_match(limited, staff).status_code == 429
        now[0] += 12                                           # one token back (5 per 60 s)
        assert kb_match(limited, staff).status_code == 200
        assert kb_match(limited, staff).status_code == 429
    finally:
        limiter._now = real_now


def test_without_a_credential_the_address_is_limited_and_open311_answers_in_its_format(limited):
    anonymous = {"environ_base": {"REMOTE_ADDR": "203.0.113.7"}}
    statuses = [kb_match(limited, {}, **anonymous).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    # Another address is not affected.
    assert kb_match(limited, {}, environ_base={"REMOTE_ADDR": "203.0.113.8"}).status_code == 401
    # The client app's credential is every resident's phone: it is limited per address.
    client = limited.token("client", (A,), name="小程序")
    form = {"jurisdiction_id": A, "service_code": "other", "phone": "13800000001", "description": "测试洪水限制"}
    codes = [limited.web.post("/open311/v2/requests.json", data=form, headers=client,
                              environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code for _ in range(5)]
    assert codes == [200] * 5
    refused = limited.web.post("/open311/v2/requests.json", data=form, headers=client,
                               environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert refused.json[0]["code"] == 429 and "秒后再试" in refused.json[0]["description"]
    assert limited.web.post("/open311/v2/requests.json", data=form, headers=client,
                            environ_base={"REMOTE_ADDR": "198.51.100.2"}).status_code == 200


def test_every_write_documents_429_with_retry_after():
    spec = _document()
    assert spec["components"]["responses"]["RATE_LIMITED"]["headers"]["Retry-After"]["required"] is True
    for method, path, operation in operations(spec):
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            assert "429" in operation["responses"], (method, path)


def test_the_rate_setting_is_parsed_strictly():
    from shared.web import parse_rate

    assert parse_rate(None) is None and parse_rate("off") is None and parse_rate("0") is None
    assert parse_rate("60/60") == (60, 60.0) and parse_rate("10") == (10, 60.0)
    for bad in ("sixty", "0/60", "5/0", "-1/60"):
        with pytest.raises(ValueError):
            parse_rate(bad)


# ================================================================================ the SMS budget

def test_reports_through_the_api_never_spend_more_sms_than_the_townships_hourly_budget(tmp_path, monkeypatch):
    from tests.support.fakes import FakeAliyunSms

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    budget = 4
    with FakeAliyunSms() as ali:                      # accepts any template code
        templates = {key: {"code": f"SMS_{n:09d}", "params": ["tracking_no"]}
                     for n, key in enumerate(("case.assigned:assignee", "case.escalated:assignee",
                                              "case.accepted:resident", "sla.warning:assignee"))}
        env = {**ali.env(templates=templates),
               "SANZHANG_NOTIFY_ROUTES": json.dumps({"default": {"lead": ["aliyun_sms"], "resident": ["aliyun_sms"]}}),
               "SANZHANG_NOTIFY_SMS_BUDGET": str(budget), "SANZHANG_NOTIFY_RATE_LIMIT": "off",
               "SANZHANG_NOTIFY_QUIET_HOURS": "off"}
        world = World.build(tmp_path, env, seed=False)
        try:
            households = world.org().households.find({"township": A}, limit=50)
            for household in households[:12]:
                world.report(A, household["address"], category="road", headers=world.creds["client_a"])
            notify = world.runtime.service("notify").api["service"]
            sms = [d for d in notify.deliveries.find({"township": A}, limit=500) if d["channel"] == "aliyun_sms"]
            sent = [d for d in sms if d["status"] in ("sent", "delivered")]
            held = [d for d in sms if d.get("hold_reason") == "sms_budget"]
            assert len(sms) >= 10                                         # the API asked for far more
            assert sum(d["segments"] for d in sent) <= budget              # than the budget let out
            assert len(ali.sent) == len(sent) and held                    # the fake saw only those
            # The next hour releases the held ones, again within that hour's budget.
            world.clock.advance(hours=1)
            sweeper = next(t for t in world.runtime.service("notify").tasks if t.name == "notify-deliveries")
            sweeper.run_once()
            world.drain()
            first_hour = {d["_id"] for d in sent}
            later = [d for d in notify.deliveries.find({"township": A}, limit=500)
                     if d["channel"] == "aliyun_sms" and d["status"] in ("sent", "delivered")
                     and d["_id"] not in first_hour]
            assert 0 < sum(d["segments"] for d in later) <= budget
            assert len(ali.sent) == len(sent) + len(later) and ali.problems == []
        finally:
            world.stop()
