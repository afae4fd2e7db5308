"""WeCom web sign-in (企业微信网页授权) against a local fake that checks the real request format:
the authorize URL, gettoken, auth/getuserinfo; the userid maps to an account's or a lead's WeCom id;
a non-member, a used code and a callback not started in this browser are refused."""
from __future__ import annotations

import json
import urllib.parse

import pytest

from shared.runtime import SERVICES, Runtime
from shared.web import create_app
from tests.support.fakes.wecom_oauth import FakeWeComOAuth
from tests.support.runtime import ADMIN_HEADERS, make_settings
from tests.support.signin import seed

T = "430382100"


@pytest.fixture
def wecom():
    with FakeWeComOAuth() as fake:
        yield fake


@pytest.fixture
def world(tmp_path, clock, wecom):
    settings = make_settings(tmp_path, extra={"SANZHANG_WECOM_OAUTH": json.dumps(wecom.oauth_config(T)),
                                              "SANZHANG_WECOM_OAUTH_ENDPOINT": wecom.url})
    runtime = Runtime(settings, SERVICES, clock=clock).start()
    app = create_app(runtime)
    app.testing = True
    yield {"runtime": runtime, "web": app.test_client(), **seed(runtime)}
    runtime.stop()


def _start(web) -> dict:
    resp = web.get(f"/signin/wecom/{T}")
    assert resp.status_code == 302
    url = urllib.parse.urlsplit(resp.headers["Location"])
    assert (url.scheme, url.netloc, url.path, url.fragment) == \
        ("https", "open.weixin.qq.com", "/connect/oauth2/authorize", "wechat_redirect")
    return dict(urllib.parse.parse_qsl(url.query))


def test_a_lead_signs_in_with_wecom_and_sees_their_cases(world, wecom):
    web = world["web"]
    query = _start(web)
    assert query["appid"] == wecom.corp_id and query["response_type"] == "code"
    assert query["scope"] == "snsapi_base" and query["agentid"] == str(wecom.agent_id)
    assert query["redirect_uri"] == "http://localhost/signin/wecom/callback"
    org = world["runtime"].service("dispatch").api["org"]
    userid = org.unit(world["unit_id"])["lead"]["wecom_id"]
    assert userid
    done = web.get("/signin/wecom/callback", query_string={"code": wecom.authorize(userid), "state": query["state"]})
    assert done.status_code == 303 and done.headers["Location"].endswith("/my")
    me = web.get("/api/v1/me").json
    assert me["role"] == "lead" and me["unit_id"] == world["unit_id"]
    assert web.get("/my").status_code == 200
    assert wecom.problems == [] and wecom.token_calls == 1


def test_a_staff_account_signs_in_by_its_wecom_id(world, wecom):
    web = world["web"]
    web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "李娟", "phone": "13700000002", "township": T, "wecom_id": "LiJuan"})
    query = _start(web)
    web.get("/signin/wecom/callback", query_string={"code": wecom.authorize("LiJuan"), "state": query["state"]})
    assert web.get("/api/v1/me").json["role"] == "staff"
    assert wecom.problems == []


def test_refusals_name_what_to_do(world, wecom):
    web = world["web"]
    query = _start(web)
    outsider = web.get("/signin/wecom/callback", query_string={"code": wecom.authorize(openid="oX"), "state": query["state"]})
    assert outsider.status_code == 401 and "不是本镇" in outsider.get_data(as_text=True)
    unknown = web.get("/signin/wecom/callback", query_string={"code": wecom.authorize("Nobody"), "state": query["state"]})
    assert unknown.status_code == 401 and "短信验证码" in unknown.get_data(as_text=True)
    code = wecom.authorize("Nobody")
    web.get("/signin/wecom/callback", query_string={"code": code, "state": query["state"]})
    used = web.get("/signin/wecom/callback", query_string={"code": code, "state": query["state"]})
    assert used.status_code == 401 and "重新进入" in used.get_data(as_text=True)
    assert web.get("/api/v1/me").status_code == 401
    assert web.get("/signin/wecom/430382199").status_code == 404
    assert wecom.problems == []


def test_a_callback_not_started_in_this_browser_is_refused(world, wecom):
    """Login CSRF: an attacker's own code and state, replayed into the victim's browser."""
    attacker = world["runtime"]
    query = _start(world["web"])
    org = attacker.service("dispatch").api["org"]
    userid = org.unit(world["unit_id"])["lead"]["wecom_id"]
    app = create_app(attacker)
    app.testing = True
    victim = app.test_client()
    resp = victim.get("/signin/wecom/callback", query_string={"code": wecom.authorize(userid), "state": query["state"]})
    assert resp.status_code == 400 and "重新进入" in resp.get_data(as_text=True)
    assert victim.get("/api/v1/me").status_code == 401
