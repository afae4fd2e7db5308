"""The sign-off API's edges: machine credentials (rotation, revocation), walls between departments and
townships, validation that names the field, replays with Idempotency-Key, paging, the OpenAPI document."""
from __future__ import annotations

import pytest

from shared.auth import Principal
from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.escalation import (CITY, FOREIGN, NEIGHBOUR, TOWNSHIP, bearer, dept_id, referred_event,
                                       setup_city)


def service(system):
    return system.service("escalation").api["service"]


def refer(system, case_id: str, **kw) -> str:
    service(system).on_case_referred(referred_event(case_id, **kw))
    return case_id


def act(web, headers, case_id, action, body=None):
    return web.post(f"/api/v1/department/cases/{case_id}/{action}", json=body or {}, headers=headers)


# ================================================================================ credentials

def test_a_revoked_credential_stops_working_at_once(system, web):
    depts = setup_city(web)
    refer(system, "c" * 32)
    assert web.get("/api/v1/department/cases", headers=depts["zjj"]).status_code == 200
    (cred,) = web.get(f"/api/v1/departments/{dept_id('zjj')}/credentials", headers=ADMIN_HEADERS).json
    resp = web.delete(f"/api/v1/departments/{dept_id('zjj')}/credentials/{cred['key_id']}", headers=ADMIN_HEADERS)
    assert resp.status_code == 200 and resp.json["revoked_at"] and resp.json["active"] is False
    assert web.get("/api/v1/department/cases", headers=depts["zjj"]).status_code == 401
    assert act(web, depts["zjj"], "c" * 32, "accept").status_code == 401
    # Revoking again is harmless; another department's key is not found through this department.
    assert web.delete(f"/api/v1/departments/{dept_id('zjj')}/credentials/{cred['key_id']}",
                      headers=ADMIN_HEADERS).status_code == 200
    (other,) = web.get(f"/api/v1/departments/{dept_id('jtj')}/credentials", headers=ADMIN_HEADERS).json
    assert web.delete(f"/api/v1/departments/{dept_id('zjj')}/credentials/{other['key_id']}",
                      headers=ADMIN_HEADERS).status_code == 404


def test_rotation_two_active_credentials_then_the_old_one_revoked(system, web):
    depts = setup_city(web)
    old = depts["zjj"]
    resp = web.post("/api/v1/department/credentials", json={"label": "2027"}, headers=old)
    assert resp.status_code == 201
    new = bearer(resp.json["token"])
    assert resp.json["token"] == f"{resp.json['key_id']}.{resp.json['secret']}"
    third = web.post("/api/v1/department/credentials", json={}, headers=new)
    assert third.status_code == 409 and third.json["error_code"] == "credential_limit"
    for headers in (old, new):   # both work during the switch
        assert web.get("/api/v1/department", headers=headers).status_code == 200
    me = web.get("/api/v1/department", headers=new).json
    assert me["id"] == dept_id("zjj") and len([c for c in me["credentials"] if c["active"]]) == 2
    assert all("secret" not in c for c in me["credentials"])
    old_key = next(c["key_id"] for c in me["credentials"] if c["key_id"] != resp.json["key_id"])
    assert web.delete(f"/api/v1/department/credentials/{old_key}", headers=new).status_code == 200
    assert web.get("/api/v1/department", headers=old).status_code == 401
    assert web.get("/api/v1/department", headers=new).status_code == 200
    # One department cannot touch another's keys.
    (jtj_key,) = web.get(f"/api/v1/departments/{dept_id('jtj')}/credentials", headers=ADMIN_HEADERS).json
    assert web.delete(f"/api/v1/department/credentials/{jtj_key['key_id']}", headers=new).status_code == 404


@pytest.mark.parametrize("make", [
    lambda tok: tok[:-2] + ("AA" if not tok.endswith("AA") else "BB"),   # wrong secret
    lambda tok: tok.split(".")[0],                                        # no secret
    lambda tok: "dk_nothex." + tok.split(".", 1)[1],                      # malformed key id
    lambda tok: "dk_0123456789abcdef." + tok.split(".", 1)[1],            # unknown key id
])
def test_bad_credentials_are_401(system, web, make):
    depts = setup_city(web, matrix=False)
    tok = depts["zjj"]["Authorization"][7:]
    assert web.get("/api/v1/department/cases", headers=bearer(make(tok))).status_code == 401


def test_a_deactivated_department_loses_access(system, web):
    depts = setup_city(web, matrix=False)
    web.patch(f"/api/v1/departments/{dept_id('zjj')}", json={"active": False}, headers=ADMIN_HEADERS)
    assert web.get("/api/v1/department", headers=depts["zjj"]).status_code == 401


def test_department_staff_may_use_a_signed_token(system, web):
    setup_city(web)
    refer(system, "c" * 32)
    person = token(system, "department", townships=(), department_id=dept_id("zjj"), name="住建局张科员")
    resp = act(web, person, "c" * 32, "accept", {"note": "已签收"})
    assert resp.status_code == 200
    assert resp.json["timeline"][-1]["actor"] == "住建局张科员"
    ghost = token(system, "department", townships=(), department_id="430382-ghost")
    assert web.get("/api/v1/department/cases", headers=ghost).status_code == 403


# ================================================================================ walls

def test_a_department_sees_only_its_own_cases(system, web):
    depts = setup_city(web)
    refer(system, "c" * 32, category="housing")     # 住建局 + 电信 + 民政局
    refer(system, "d" * 32, category="road")        # 交通运输局
    assert [r["case_id"] for r in web.get("/api/v1/department/cases", headers=depts["dx"]).json["items"]] == ["c" * 32]
    for path in (f"/api/v1/department/cases/{'d' * 32}", f"/api/v1/department/cases/{'x' * 32}"):
        resp = web.get(path, headers=depts["dx"])
        assert resp.status_code == 404 and resp.json["message"]
    for action, body in (("accept", {}), ("sign-off", {"resolution": "x"}), ("return", {"reason": "x",
                                                                                         "evidence": ["https://a.cn"]})):
        assert act(web, depts["dx"], "d" * 32, action, body).status_code == 404
    # Nor are departments township staff, or staff departments.
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/referrals", headers=depts["zjj"]).status_code == 403
    assert web.get(f"/api/v1/referrals/{'c' * 32}", headers=depts["zjj"]).status_code == 403
    assert web.get("/api/v1/department/cases", headers=token(system, "staff")).status_code == 403
    assert web.get(f"/api/v1/cities/{CITY}/matrix", headers=depts["zjj"]).status_code == 403


def test_a_township_never_sees_another_townships_referrals(system, web):
    depts = setup_city(web)
    refer(system, "c" * 32, category="road")
    act(web, depts["jtj"], "c" * 32, "accept")
    resp = act(web, depts["jtj"], "c" * 32, "extension", {"working_days": 2, "reason": "等材料"})
    ext = resp.json["my_part"]["extensions"][0]["id"]
    neighbour = token(system, "staff", townships=(NEIGHBOUR,))
    assert web.get(f"/api/v1/referrals/{'c' * 32}", headers=neighbour).status_code == 404
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/referrals", headers=neighbour).status_code == 404
    assert web.post(f"/api/v1/referrals/{'c' * 32}/extensions/{ext}/approve", json={},
                    headers=neighbour).status_code == 404
    assert web.post(f"/api/v1/referrals/{'c' * 32}/ruling", json={"ruling": "x"}, headers=neighbour).status_code == 404
    assert web.post(f"/api/v1/referrals/{'c' * 32}/lead", json={"department_id": dept_id("cg")},
                    headers=neighbour).status_code == 404
    assert web.get(f"/api/v1/townships/{NEIGHBOUR}/referrals", headers=neighbour).json == []
    own = token(system, "staff", townships=(TOWNSHIP,))
    view = web.get(f"/api/v1/referrals/{'c' * 32}", headers=own).json
    assert view["case_id"] == "c" * 32 and view["report"] is None
    assert web.get(f"/api/v1/referrals/{'c' * 32}", headers=ADMIN_HEADERS).status_code == 200
    # A lead of the township is not staff.
    assert web.get(f"/api/v1/referrals/{'c' * 32}", headers=token(system, "lead", unit_id="u-1")).status_code == 403


def test_a_department_of_another_city_cannot_be_chosen(system, web):
    setup_city(web)
    web.post("/api/v1/cities/430521/departments", json={"id": "430521-jtj", "name": "邵东市交通运输局"},
             headers=ADMIN_HEADERS)
    refer(system, "c" * 32, category="road")
    service(system).act(Principal(role="department", department_id=dept_id("jtj"), name="jtj"), "c" * 32, "return",
                        reason="不归我们", evidence=["https://a.cn/x"])
    resp = web.post(f"/api/v1/referrals/{'c' * 32}/lead", json={"department_id": "430521-jtj"},
                    headers=token(system, "staff"))
    assert resp.status_code == 422 and "department_id" in resp.json["errors"]["json"]
    foreign = token(system, "staff", townships=(FOREIGN,), scopes=("city",))
    assert web.get(f"/api/v1/departments/{dept_id('jtj')}/credentials", headers=foreign).status_code == 404


# ================================================================================ validation

@pytest.mark.parametrize("action,body,field", [
    ("accept", {"note": "x", "status": "signed_off"}, "status"),
    ("progress", {}, "note"),
    ("progress", {"note": "   "}, "note"),
    ("extension", {"working_days": 0, "reason": "x"}, "working_days"),
    ("extension", {"working_days": "five", "reason": "x"}, "working_days"),
    ("extension", {"working_days": 3}, "reason"),
    ("return", {"reason": "x", "evidence": []}, "evidence"),
    ("return", {"reason": "x", "evidence": ["javascript:alert(1)"]}, "evidence"),
    ("return", {"reason": "x"}, "evidence"),
    ("part", {"note": "x", "attachments": ["ftp://a/b"]}, "attachments"),
    ("sign-off", {"note": "x"}, "resolution"),
])
def test_bad_requests_name_the_field(system, web, action, body, field):
    depts = setup_city(web)
    refer(system, "c" * 32)
    resp = act(web, depts["zjj"], "c" * 32, action, body)
    assert resp.status_code == 422, resp.json
    assert field in resp.json["errors"]["json"]


def test_malformed_bodies_and_queries_are_never_500(system, web):
    depts = setup_city(web)
    refer(system, "c" * 32)
    resp = web.post(f"/api/v1/department/cases/{'c' * 32}/accept", data="{oops", content_type="application/json",
                    headers=depts["zjj"])
    assert resp.status_code == 400 and resp.is_json
    for query, field in (("limit=201", "limit"), ("status=lost", "status"), ("due_before=tomorrow", "due_before"),
                         ("township=4303", "township"), ("color=red", "color"), ("cursor=%%%", "cursor")):
        resp = web.get(f"/api/v1/department/cases?{query}", headers=depts["zjj"])
        assert resp.status_code == 422, (query, resp.json)
        assert field in str(resp.json["errors"]), query
    assert web.post("/api/v1/cities/430382/departments", json={"name": "x" * 100},
                    headers=ADMIN_HEADERS).status_code == 422
    assert web.put(f"/api/v1/departments/{dept_id('zjj')}/webhook", json={"url": "ftp://x"},
                   headers=ADMIN_HEADERS).json["errors"]["json"]["url"]
    assert web.patch(f"/api/v1/departments/{dept_id('zjj')}", json={"sla": {"finish": "soon"}},
                     headers=ADMIN_HEADERS).json["errors"]["json"]["sla"]["finish"]
    assert web.put("/api/v1/cities/43038/", json={"name": "x"}, headers=ADMIN_HEADERS).status_code == 404


# ================================================================================ replays

def test_replays_answer_the_first_result_and_change_nothing(system, web):
    depts = setup_city(web)
    refer(system, "c" * 32)
    key = {"Idempotency-Key": "accept-c-1"}
    first = web.post(f"/api/v1/department/cases/{'c' * 32}/accept", json={"note": "已签收"},
                     headers={**depts["zjj"], **key})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    timeline = service(system).referrals.get("c" * 32)["timeline"]
    again = web.post(f"/api/v1/department/cases/{'c' * 32}/accept", json={"note": "已签收"},
                     headers={**depts["zjj"], **key})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    assert service(system).referrals.get("c" * 32)["timeline"] == timeline
    timeline = web.get(f"/api/v1/department/cases/{'c' * 32}", headers=depts["zjj"]).json["timeline"]
    assert [t["type"] for t in timeline].count("accepted") == 1
    # The same key on another request is refused; on another department it is another key.
    reused = web.post(f"/api/v1/department/cases/{'c' * 32}/progress", json={"note": "进展"},
                      headers={**depts["zjj"], **key})
    assert reused.status_code == 422 and reused.json["error_code"] == "idempotency_key_reused"
    assert web.post(f"/api/v1/department/cases/{'c' * 32}/accept", json={"note": "已签收"},
                    headers={**depts["dx"], **key}).status_code == 200

    # A refusal is a result too: replayed as it was, even once the call would succeed.
    sign = {"Idempotency-Key": "sign-c-1"}
    refused = web.post(f"/api/v1/department/cases/{'c' * 32}/sign-off", json={"resolution": "已修好"},
                       headers={**depts["zjj"], **sign})
    assert refused.status_code == 409 and refused.json["error_code"] == "co_parts_pending"
    for short in ("dx", "mzj"):
        act(web, depts[short], "c" * 32, "accept")
        assert act(web, depts[short], "c" * 32, "part", {"note": "已配合"}).status_code == 200
    replay = web.post(f"/api/v1/department/cases/{'c' * 32}/sign-off", json={"resolution": "已修好"},
                      headers={**depts["zjj"], **sign})
    assert replay.status_code == 409 and replay.json == refused.json
    fresh = web.post(f"/api/v1/department/cases/{'c' * 32}/sign-off", json={"resolution": "已修好"},
                     headers={**depts["zjj"], "Idempotency-Key": "sign-c-2"})
    assert fresh.status_code == 200 and fresh.json["case_status"] == "signed_off"
    assert web.post(f"/api/v1/department/cases/{'c' * 32}/sign-off", json={"resolution": "已修好"},
                    headers={**depts["zjj"], "Idempotency-Key": "sign-c-2"}).json == fresh.json
    too_long = web.post(f"/api/v1/department/cases/{'c' * 32}/progress", json={"note": "x"},
                        headers={**depts["zjj"], "Idempotency-Key": "k" * 300})
    assert too_long.status_code == 422 and "Idempotency-Key" in too_long.json["errors"]["headers"]


def test_a_key_whose_response_was_lost_still_applies_once(system, web):
    """A crash after the change but before the stored response: the case itself remembers the key."""
    depts = setup_city(web)
    refer(system, "c" * 32)
    svc = service(system)
    principal = Principal(role="department", department_id=dept_id("zjj"), name="住建局")
    svc.act(principal, "c" * 32, "accept", idempotency_key="a-1", note=None)
    timeline = svc.referrals.get("c" * 32)["timeline"]
    doc, _ = svc.act(principal, "c" * 32, "accept", idempotency_key="a-1", note=None)   # no 409, no change
    assert doc["timeline"] == timeline
    # Through HTTP the same key (no stored response) answers the case as it is.
    resp = web.post(f"/api/v1/department/cases/{'c' * 32}/accept", json={}, headers={**depts["zjj"],
                                                                                   "Idempotency-Key": "a-1"})
    assert resp.status_code == 200 and resp.json["my_part"]["status"] == "accepted"


# ================================================================================ paging and filters

def test_paging_with_a_cursor_and_filters(system, web):
    depts = setup_city(web)
    ids = [c * 32 for c in "abcdefg"]
    for i, case_id in enumerate(ids):
        refer(system, case_id, category="other", township=TOWNSHIP if i % 2 == 0 else NEIGHBOUR)
    seen, cursor = [], None
    while True:
        url = "/api/v1/department/cases?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = web.get(url, headers=depts["cg"]).json
        seen += [r["case_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids)

    act(web, depts["cg"], ids[0], "accept")
    system.clock.advance(minutes=5)
    act(web, depts["cg"], ids[1], "accept")
    page = web.get("/api/v1/department/cases?status=accepted", headers=depts["cg"]).json
    assert [r["case_id"] for r in page["items"]] == [ids[0], ids[1]]   # oldest change first
    page = web.get("/api/v1/department/cases?status=assigned&status=accepted&limit=200", headers=depts["cg"]).json
    assert len(page["items"]) == 7 and page["next_cursor"] is None
    page = web.get(f"/api/v1/department/cases?township={NEIGHBOUR}", headers=depts["cg"]).json
    assert {r["case_id"] for r in page["items"]} == {ids[1], ids[3], ids[5]}
    page = web.get("/api/v1/department/cases?changed_since=2026-11-02T09:03:00%2B08:00", headers=depts["cg"]).json
    assert [r["case_id"] for r in page["items"]] == [ids[1]]
    # Still waiting to be accepted (due Tuesday 09:00), versus accepted (due in ten working days).
    page = web.get("/api/v1/department/cases?due_before=2026-11-04T00:00:00Z", headers=depts["cg"]).json
    assert {r["case_id"] for r in page["items"]} == set(ids[2:])


# ================================================================================ the document

def test_the_api_is_in_the_openapi_document_with_examples(system, web):
    spec = web.get("/openapi.json").json
    paths = spec["paths"]
    for path in ("/api/v1/department/cases", "/api/v1/department/cases/{case_id}",
                 "/api/v1/department/cases/{case_id}/accept", "/api/v1/department/cases/{case_id}/return",
                 "/api/v1/department/cases/{case_id}/extension", "/api/v1/department/cases/{case_id}/part",
                 "/api/v1/department/cases/{case_id}/sign-off", "/api/v1/referrals/{case_id}/lead",
                 "/api/v1/referrals/{case_id}/ruling", "/api/v1/cities/{city}/matrix/import",
                 "/api/v1/referrals/{case_id}/extensions/{extension_id}/approve",
                 "/api/v1/departments/{department_id}/credentials"):
        assert path in paths, path
    sign_off = paths["/api/v1/department/cases/{case_id}/sign-off"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in sign_off["parameters"])
    assert "409" in sign_off["responses"] and "422" in sign_off["responses"]
    schemas = spec["components"]["schemas"]
    assert schemas["ReturnIn"]["properties"]["evidence"]["example"]
    assert schemas["SignOffIn"]["properties"]["resolution"]["example"]
    assert schemas["ExtensionIn"]["properties"]["working_days"]["example"] == 5
    assert schemas["DepartmentCaseRowOut"]["properties"]["status_text"]["example"] == "待签收"
