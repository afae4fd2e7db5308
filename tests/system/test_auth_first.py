"""Authentication before validation, on every operation of the OpenAPI document.

flask-smorest applies a view's decorators in order, so an ``arguments`` decorator placed above the
credential check parses the body first and tells an anonymous caller which fields are wrong (422)
instead of 401. Every operation that needs a credential is called here without one, with a body
and a query string that are both invalid: the answer must be 401 with a JSON body — never a field
error, never a 500 (Open311's routes answer in the GeoReport v2 error format). The operations that
are public by design are listed below with the reason.

The app is built from the embedded runtime but never started: a 401 is decided before any service
runs.
"""
from __future__ import annotations

import re

import pytest

from shared.auth import Principal
from shared.runtime import SERVICES, Runtime
from shared.web import create_app
from tests.support.runtime import make_settings
from tests.support.abuse import _document as document
from tests.support.abuse import operations

# (METHOD, path) -> why no bearer credential is needed. Open311 (GeoReport v2) answers in its own
# format: its reads are public, and a write without an api_key is refused in that format.
PUBLIC = {
    ("GET", "/open311/v2/discovery.{fmt}"): "Open311 GeoReport v2: discovery is public",
    ("GET", "/open311/v2/services.{fmt}"): "Open311 GeoReport v2: the service list is public",
    ("GET", "/open311/v2/services/{service_code}.{fmt}"): "Open311 GeoReport v2: a service definition is public",
    ("POST", "/api/v1/signin/code"): "sign-in: asking for a one-time code is how a person gets a credential",
    ("POST", "/api/v1/signin/verify"): "sign-in: entering the code is how a person gets a credential",
}
# Provider callbacks carry a shared secret in the URL instead of a credential: a wrong or missing
# secret is 404, the same as a route that does not exist (nothing tells a prober it is there).
SECRET_IN_URL = {
    ("POST", "/api/v1/receipts/{provider}"): "SMS delivery receipts (Aliyun, Tencent): secret in ?key=",
    ("POST", "/api/v1/receipts/{provider}/{key}"): "SMS delivery receipts: secret in the path",
}

INVALID_BODY = {"__not_a_field__": 1, "township": ["not", "a", "string"], "limit": -1}
INVALID_QUERY = {"__not_a_param__": "1", "limit": "-5", "offset": "x", "township": "?"}


_IDS = {"code": "430382100", "township": "430382100", "fmt": "json", "provider": "aliyun"}


def _url(path: str) -> str:
    # Well-formed ids: a route that checks the caller first never looks at them.
    return re.sub(r"{(\w+)}", lambda m: _IDS.get(m.group(1), "x1"), path)


def _credentialed():
    for method, path, _ in operations(document()):
        if (method, path) not in PUBLIC and (method, path) not in SECRET_IN_URL:
            yield method, path


RUNTIME: list[Runtime] = []


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    runtime = Runtime(make_settings(tmp_path_factory.mktemp("auth-first")), SERVICES)
    RUNTIME[:] = [runtime]
    app = create_app(runtime)
    app.testing = True
    yield app.test_client()
    for store in runtime.stores.values():
        store.close()


def test_the_public_list_names_real_operations():
    known = {(method, path) for method, path, _ in operations(document())}
    assert set(PUBLIC) | set(SECRET_IN_URL) <= known, sorted(set(PUBLIC) | set(SECRET_IN_URL) - known)


@pytest.mark.parametrize("method,path", sorted(PUBLIC))
def test_a_public_operation_never_fails_on_an_invalid_request(client, method, path):
    resp = client.open(_url(path), method=method, json=INVALID_BODY, query_string=INVALID_QUERY)
    assert resp.status_code < 500, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.is_json


@pytest.mark.parametrize("method,path", sorted(SECRET_IN_URL))
def test_a_callback_without_its_secret_is_404_before_its_body_is_read(client, method, path):
    resp = client.open(_url(path), method=method, json=INVALID_BODY, query_string=INVALID_QUERY)
    assert resp.status_code == 404, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.is_json


@pytest.mark.parametrize("method,path", list(_credentialed()))
def test_an_anonymous_request_with_an_invalid_body_is_401(client, method, path):
    resp = client.open(_url(path), method=method, json=INVALID_BODY, query_string=INVALID_QUERY)
    assert resp.status_code == 401, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.is_json
    # Open311 errors are a list in the GeoReport v2 format; everything else is one error object.
    error = resp.json[0] if path.startswith("/open311/") else resp.json
    assert error["code"] == 401


# Routes whose role is checked by decorator, called by a role they refuse with an invalid body.
WRONG_ROLE = [
    ("POST", "/api/v1/admin/townships", "staff"),
    ("PUT", "/api/v1/townships/{code}/templates", "lead"),
    ("GET", "/api/v1/deliveries", "client"),
    ("POST", "/api/v1/townships/{code}/roster", "lead"),
    ("POST", "/api/v1/reports", "department"),
]


@pytest.mark.parametrize("method,path,role", WRONG_ROLE)
def test_a_wrong_role_is_403_before_its_body_is_read(client, method, path, role):
    tok = RUNTIME[0].issuer.issue(Principal(role=role, townships=("430382100",)))
    resp = client.open(_url(path), method=method, json=INVALID_BODY, query_string=INVALID_QUERY,
                       headers={"Authorization": f"Bearer {tok}"})
    assert resp.status_code == 403, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.is_json and resp.json["code"] == 403
