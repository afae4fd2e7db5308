"""Leads' and township staff's HTTP actions on cases, each with its 409 (wrong state), 404 (not the
caller's case or township) and 422 (the field named); the resident's plain-Chinese view."""
from __future__ import annotations

import pytest

from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.dispatch import (TOWNSHIP, api, case, holder, kinds, posts, referral_reason, submit,
                                         sweep)


OTHER = "430382101"


@pytest.fixture
def setup(system, web, demo):
    p = posts(system)
    case_id = submit(system, web)
    lead = holder(system, p["neighbourhood"])
    return p, case_id, lead


def post(web, path, body, headers):
    return web.post(f"/api/v1/cases/{path}", json=body, headers=headers)


def other_lead(system, p):
    """The lead of a neighbouring post of the same township (周边的邻长)."""
    units = api(system)["org"].tree(TOWNSHIP)
    unit = next(u for u in units if u["level"] == "neighbourhood" and u.get("lead")
                and u["_id"] != p["neighbourhood"]["_id"])
    return holder(system, unit)


def same_post_other_township(system, p):
    return token(system, "lead", townships=(OTHER,), unit_id=p["neighbourhood"]["_id"], name="外镇")


# -- accept ---------------------------------------------------------------------------------------

def test_accept(system, web, setup):
    p, case_id, lead = setup
    resp = post(web, f"{case_id}/accept", {"note": "今天下午上门"}, lead)
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "accepted" and resp.json["timer"]["kind"] == "warn_resolve"
    entry = resp.json["timeline"][-1]
    assert entry["type"] == "accepted" and entry["actor"] == p["neighbourhood"]["lead"]["name"]
    assert entry["note"] == "今天下午上门" and entry["at"]

    again = post(web, f"{case_id}/accept", {}, lead)
    assert again.status_code == 409 and "已接单" in again.json["message"]
    assert post(web, f"{case_id}/accept", {}, other_lead(system, p)).status_code == 404
    assert post(web, f"{case_id}/accept", {}, same_post_other_township(system, p)).status_code == 404
    assert post(web, "no-such-case/accept", {}, lead).status_code == 404
    bad = post(web, f"{case_id}/accept", {"note": "ok", "status": "resolved"}, lead)
    assert bad.status_code == 422 and "status" in bad.json["errors"]["json"]
    assert web.post(f"/api/v1/cases/{case_id}/accept", json={}).status_code == 401


def test_accept_with_no_body_and_junk_bodies(system, web, setup):
    _, case_id, lead = setup
    assert post(web, f"{case_id}/progress", ["a", "list"], lead).status_code == 422
    resp = web.post(f"/api/v1/cases/{case_id}/accept", data="{oops", content_type="application/json", headers=lead)
    assert resp.status_code == 400 and resp.is_json
    assert web.post(f"/api/v1/cases/{case_id}/accept", headers=lead).status_code == 200


# -- progress and resolve -------------------------------------------------------------------------

def test_progress(system, web, setup):
    p, case_id, lead = setup
    early = post(web, f"{case_id}/progress", {"note": "已联系住户"}, lead)
    assert early.status_code == 409 and "先接单" in early.json["message"]
    post(web, f"{case_id}/accept", {}, lead)
    resp = post(web, f"{case_id}/progress", {"note": "已联系电工，明天更换"}, lead)
    assert resp.status_code == 200 and resp.json["timeline"][-1]["type"] == "progress"
    for body, field in (({}, "note"), ({"note": "   "}, "note"), ({"note": "x" * 1001}, "note"),
                        ({"note": 5}, "note"), ({"note": "好", "extra": 1}, "extra")):
        bad = post(web, f"{case_id}/progress", body, lead)
        assert bad.status_code == 422 and field in bad.json["errors"]["json"], body
    assert post(web, f"{case_id}/progress", {"note": "我也看看"}, other_lead(system, p)).status_code == 404


def test_resolve(system, web, setup):
    p, case_id, lead = setup
    early = post(web, f"{case_id}/resolve", {"note": "修好了"}, lead)
    assert early.status_code == 409 and "先接单" in early.json["message"]
    post(web, f"{case_id}/accept", {}, lead)
    assert post(web, f"{case_id}/resolve", {}, lead).json["errors"]["json"].keys() == {"note"}
    assert post(web, f"{case_id}/resolve", {"note": "修好了"}, same_post_other_township(system, p)).status_code == 404
    resp = post(web, f"{case_id}/resolve", {"note": "已更换灯泡，住户确认恢复照明"}, lead)
    assert resp.status_code == 200
    assert resp.json["status"] == "resolved" and resp.json["resolution"] == "已更换灯泡，住户确认恢复照明"
    assert resp.json["timer"] is None and case(system, case_id)["timer_due"] is None
    for action, body in (("resolve", {"note": "再次"}), ("accept", {}), ("progress", {"note": "x"}),
                         ("escalate", {"reason": "beyond_ability"})):
        again = post(web, f"{case_id}/{action}", body, lead)
        assert again.status_code == 409 and "已办结" in again.json["message"], action


def test_the_resident_reads_each_step_in_plain_chinese(system, web, setup):
    _, case_id, lead = setup
    post(web, f"{case_id}/accept", {}, lead)
    post(web, f"{case_id}/progress", {"note": "已联系电工"}, lead)
    post(web, f"{case_id}/resolve", {"note": "路灯已修好"}, lead)
    assert system.drain()
    report_id = case(system, case_id)["report_id"]
    view = web.get(f"/api/v1/reports/{report_id}", headers=token(system, "client")).json
    texts = [t["text"] for t in view["timeline"]]
    assert texts[-3:] == ["第1邻邻长 周桂香 已接单", "办理进展：已联系电工", "已办结：路灯已修好"]
    assert view["status"] == "resolved"


# -- escalate -------------------------------------------------------------------------------------

def test_escalate(system, web, setup):
    p, case_id, lead = setup
    bad = post(web, f"{case_id}/escalate", {"reason": "too_busy"}, lead)
    assert bad.status_code == 422 and "reason" in bad.json["errors"]["json"]
    assert post(web, f"{case_id}/escalate", {}, lead).json["errors"]["json"].keys() == {"reason"}
    assert post(web, f"{case_id}/escalate", {"reason": "beyond_ability"}, other_lead(system, p)).status_code == 404
    resp = post(web, f"{case_id}/escalate", {"reason": "not_my_neighbourhood", "note": "住户在隔壁邻"}, lead)
    assert resp.status_code == 200
    assert resp.json["level"] == "group" and resp.json["status"] == "assigned"
    entry = resp.json["timeline"][-1]
    assert (entry["type"], entry["from_level"], entry["reason"], entry["note"]) == (
        "escalated", "neighbourhood", "不属于本辖区", "住户在隔壁邻")
    # The case is the group lead's now: the neighbourhood lead no longer sees it.
    assert post(web, f"{case_id}/accept", {}, lead).status_code == 404
    assert web.get(f"/api/v1/cases/{case_id}", headers=lead).status_code == 404
    assert post(web, f"{case_id}/accept", {}, holder(system, p["group"])).status_code == 200


def test_escalate_skips_a_vacant_post(system, web, demo):
    org = api(system)["org"]
    units = {u["_id"]: u for u in org.tree(TOWNSHIP)}
    vacant = next(u for u in units.values() if u["level"] == "neighbourhood" and not u.get("lead"))
    group = units[vacant["parent_id"]]
    group_lead = holder(system, group)
    case_id = submit(system, web, address="银田村四组19号")  # its 邻长 post is vacant: the group has it
    assert case(system, case_id)["unit_id"] == group["_id"]
    # Empty the area lead's post too: escalating from the group skips it and reaches the village.
    area = dict(units[group["parent_id"]], lead=None)
    org.units.upsert(area)
    resp = post(web, f"{case_id}/escalate", {"reason": "beyond_ability"}, group_lead)
    assert resp.json["level"] == "village" and "岗位空缺" in resp.json["timeline"][-1]["skipped"]


def test_escalating_from_the_township_refers_the_case(system, web, demo):
    case_id = submit(system, web, address="不存在的地址99号", reporter_phone="13999999999")
    staff = token(system, "staff")
    resp = post(web, f"{case_id}/escalate", {"reason": "needs_department", "note": "需住建局牵头"}, staff)
    assert resp.status_code == 200 and resp.json["status"] == "referred" and resp.json["level"] == "department"
    assert post(web, f"{case_id}/escalate", {"reason": "needs_department"}, staff).status_code == 409
    assert system.drain()
    assert referral_reason(system, case_id) == "需要部门协调解决"


def test_staff_may_only_act_as_holder_at_the_township(system, web, setup):
    _, case_id, _ = setup
    resp = post(web, f"{case_id}/accept", {}, token(system, "staff"))
    assert resp.status_code == 403 and "经办人" in resp.json["message"]
    assert post(web, f"{case_id}/accept", {}, token(system, "staff", townships=(OTHER,))).status_code == 404
    assert post(web, f"{case_id}/accept", {}, token(system, "client")).status_code == 403


# -- supervise and answer -------------------------------------------------------------------------

def test_supervise_and_answer(system, web, setup):
    p, case_id, lead = setup
    staff = token(system, "staff", name="镇综治中心")
    assert post(web, f"{case_id}/supervise", {"note": "请今天内答复"}, lead).status_code == 403
    assert post(web, f"{case_id}/supervise", {"note": "请今天内答复"},
                token(system, "staff", townships=(OTHER,))).status_code == 404
    assert "note" in post(web, f"{case_id}/supervise", {}, staff).json["errors"]["json"]
    resp = post(web, f"{case_id}/supervise", {"note": "群众反映强烈，请今天内答复"}, staff)
    assert resp.status_code == 200 and resp.json["unanswered_supervisions"] == 1
    sid = resp.json["supervisions"][0]["id"]
    listed = web.get(f"/api/v1/townships/{TOWNSHIP}/cases?supervision=unanswered", headers=staff).json
    assert [c["id"] for c in listed] == [case_id]

    assert post(web, f"{case_id}/supervisions/nope/answer", {"note": "收到"}, lead).status_code == 404
    assert post(web, f"{case_id}/supervisions/{sid}/answer", {"note": "收到"}, other_lead(system, p)).status_code == 404
    assert "note" in post(web, f"{case_id}/supervisions/{sid}/answer", {}, lead).json["errors"]["json"]
    resp = post(web, f"{case_id}/supervisions/{sid}/answer", {"note": "已安排电工明早更换"}, lead)
    assert resp.status_code == 200 and resp.json["unanswered_supervisions"] == 0
    s = resp.json["supervisions"][0]
    assert s["answer"] == "已安排电工明早更换" and s["answered_at"] and s["by"] == "镇综治中心"
    again = post(web, f"{case_id}/supervisions/{sid}/answer", {"note": "收到"}, lead)
    assert again.status_code == 409
    assert kinds(case(system, case_id))[-2:] == ["supervised", "supervision_answered"]
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/cases?supervision=unanswered", headers=staff).json == []

    post(web, f"{case_id}/accept", {}, lead)
    post(web, f"{case_id}/resolve", {"note": "修好了"}, lead)
    assert post(web, f"{case_id}/supervise", {"note": "再督办"}, staff).status_code == 409


# -- reassign -------------------------------------------------------------------------------------

def test_reassign(system, web, setup):
    p, case_id, lead = setup
    staff = token(system, "staff")
    units = api(system)["org"].tree(TOWNSHIP)
    target = next(u for u in units if u["level"] == "neighbourhood" and u.get("lead")
                  and u["_id"] != p["neighbourhood"]["_id"])
    vacant = next(u for u in units if u["level"] == "neighbourhood" and not u.get("lead"))

    assert post(web, f"{case_id}/reassign", {"unit_id": target["_id"]}, lead).status_code == 403
    assert post(web, f"{case_id}/reassign", {"unit_id": target["_id"]},
                token(system, "staff", townships=(OTHER,))).status_code == 404
    for body, field in (({}, "unit_id"), ({"unit_id": "u-nowhere"}, "unit_id"), ({"unit_id": vacant["_id"]}, "unit_id"),
                        ({"unit_id": target["_id"], "level": "group"}, "level")):
        bad = post(web, f"{case_id}/reassign", body, staff)
        assert bad.status_code == 422 and field in bad.json["errors"]["json"], body
    same = post(web, f"{case_id}/reassign", {"unit_id": p["neighbourhood"]["_id"]}, staff)
    assert same.status_code == 409

    resp = post(web, f"{case_id}/reassign", {"unit_id": target["_id"], "note": "住户实际在这一邻"}, staff)
    assert resp.status_code == 200 and resp.json["unit_id"] == target["_id"] and resp.json["status"] == "assigned"
    assert resp.json["timeline"][-1]["type"] == "reassigned"
    assert post(web, f"{case_id}/accept", {}, lead).status_code == 404
    assert post(web, f"{case_id}/accept", {}, holder(system, target)).status_code == 200
    # To the township itself, then resolved there: nothing more to reassign.
    resp = post(web, f"{case_id}/reassign", {"unit_id": p["township"]["_id"]}, staff)
    assert resp.json["level"] == "township"
    post(web, f"{case_id}/accept", {}, staff)
    post(web, f"{case_id}/resolve", {"note": "镇里协调解决"}, staff)
    assert post(web, f"{case_id}/reassign", {"unit_id": target["_id"]}, staff).status_code == 409
    assert system.drain()
    view = web.get(f"/api/v1/reports/{case(system, case_id)['report_id']}", headers=token(system, "client")).json
    assert any(t["type"] == "case.reassigned" and t["text"].startswith("已改派给") for t in view["timeline"])


# -- recategorise ---------------------------------------------------------------------------------

def test_recategorise(system, web, setup):
    p, case_id, lead = setup
    staff = token(system, "staff")
    doc = case(system, case_id)
    assert (doc["category"], doc["tier"]) == ("environment", "general")
    assert web.patch(f"/api/v1/cases/{case_id}", json={"tier": "complex"}, headers=lead).status_code == 403
    assert web.patch(f"/api/v1/cases/{case_id}", json={"tier": "complex"},
                     headers=token(system, "staff", townships=(OTHER,))).status_code == 404
    for body, field in (({}, "category"), ({"note": "改"}, "category"), ({"category": "unicorns"}, "category"),
                        ({"tier": "instant"}, "tier"), ({"tier": "urgent"}, "tier"),
                        ({"tier": "complex", "x": 1}, "x")):
        bad = web.patch(f"/api/v1/cases/{case_id}", json=body, headers=staff)
        assert bad.status_code == 422 and field in bad.json["errors"]["json"], body
    same = web.patch(f"/api/v1/cases/{case_id}", json={"category": "environment"}, headers=staff)
    assert same.status_code == 409

    # A new category brings its default tier (road → difficult); the clocks are recounted.
    resp = web.patch(f"/api/v1/cases/{case_id}", json={"category": "road", "note": "实为路面塌陷"}, headers=staff)
    assert resp.status_code == 200
    assert (resp.json["category"], resp.json["tier"], resp.json["category_name"]) == ("road", "difficult", "道路交通")
    assert resp.json["accept_due"] > doc["accept_due"] and resp.json["promise_due"] > doc["promise_due"]
    entry = resp.json["timeline"][-1]
    assert (entry["type"], entry["from_category"], entry["from_tier"]) == ("recategorised", "environment", "general")
    resp = web.patch(f"/api/v1/cases/{case_id}", json={"tier": "complex"}, headers=staff)
    assert (resp.json["category"], resp.json["tier"]) == ("road", "complex")
    assert system.drain()
    view = web.get(f"/api/v1/reports/{doc['report_id']}", headers=token(system, "client")).json
    assert view["timeline"][-1]["type"] == "case.updated"

    post(web, f"{case_id}/accept", {}, lead)
    post(web, f"{case_id}/resolve", {"note": "已修复"}, lead)
    assert web.patch(f"/api/v1/cases/{case_id}", json={"tier": "general"}, headers=staff).status_code == 409


# -- reading and lists ----------------------------------------------------------------------------

def test_read_one_case(system, web, setup):
    p, case_id, lead = setup
    for headers in (lead, token(system, "staff"), ADMIN_HEADERS):
        resp = web.get(f"/api/v1/cases/{case_id}", headers=headers)
        assert resp.status_code == 200
        assert kinds(resp.json) == ["reported", "assigned"] and "figures" in resp.json
        assert "outbox" not in resp.json and "seen" not in resp.json
    assert resp.json["assignee"]["lead_phone_masked"].count("*") == 4
    assert web.get(f"/api/v1/cases/{case_id}", headers=other_lead(system, p)).status_code == 404
    assert web.get(f"/api/v1/cases/{case_id}", headers=token(system, "staff", townships=(OTHER,))).status_code == 404
    assert web.get(f"/api/v1/cases/{case_id}", headers=token(system, "client")).status_code == 403


def test_a_lead_lists_its_open_due_soon_and_overdue_cases(system, web, demo, clock):
    p = posts(system)
    lead = holder(system, p["neighbourhood"])
    first = submit(system, web)
    clock.advance(minutes=60)
    second = submit(system, web)
    third = submit(system, web, address="韶山村一组15号")
    post(web, f"{third}/accept", {}, lead)
    post(web, f"{third}/resolve", {"note": "已处理"}, lead)

    def listed(show):
        resp = web.get(f"/api/v1/my/cases?show={show}", headers=lead)
        assert resp.status_code == 200
        return [(c["id"], c["timing"]) for c in resp.json]

    assert listed("open") == [(first, "on_time"), (second, "on_time")]  # nearest deadline first
    clock.advance(minutes=35)  # first is past its warning point (1.5h)
    assert listed("due_soon") == [(first, "due_soon")]
    clock.advance(minutes=30)  # first is past its deadline; the sweeper has not run yet
    assert listed("overdue") == [(first, "overdue")]
    assert [c for c, _ in listed("resolved")] == [third]
    assert len(listed("all")) == 3
    assert web.get("/api/v1/my/cases?show=everything", headers=lead).status_code == 422
    assert "limit" in web.get("/api/v1/my/cases?limit=0", headers=lead).json["errors"]["query"]
    sweep(system)  # first has moved up to the group lead
    assert listed("open") == [(second, "on_time")]
    assert web.get("/api/v1/my/cases", headers=other_lead(system, p)).json == []
    assert web.get("/api/v1/my/cases", headers=token(system, "client")).status_code == 403
    staff_held = web.get("/api/v1/my/cases", headers=token(system, "staff")).json
    assert staff_held == []  # nothing has reached the township yet


def test_staff_see_every_case_of_their_township(system, web, demo, clock):
    p = posts(system)
    a = submit(system, web)
    b = submit(system, web, address="不存在的地址99号", reporter_phone="13999999999")
    staff = token(system, "staff")
    listed = web.get(f"/api/v1/townships/{TOWNSHIP}/cases", headers=staff).json
    assert {c["id"] for c in listed} == {a, b}
    assert [c["id"] for c in web.get(f"/api/v1/townships/{TOWNSHIP}/cases?level=township", headers=staff).json] == [b]
    by_unit = web.get(f"/api/v1/townships/{TOWNSHIP}/cases?unit_id={p['neighbourhood']['_id']}", headers=staff).json
    assert [c["id"] for c in by_unit] == [a]
    assert [c["id"] for c in web.get("/api/v1/my/cases", headers=staff).json] == [b]
    clock.advance(hours=2)
    assert [c["id"] for c in web.get(f"/api/v1/townships/{TOWNSHIP}/cases?show=overdue",
                                     headers=staff).json] == [a]
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/cases?level=moon", headers=staff).status_code == 422
    assert web.get(f"/api/v1/townships/{OTHER}/cases", headers=staff).status_code == 404
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/cases", headers=holder(system, p["group"])).status_code == 403
    assert len(web.get(f"/api/v1/townships/{TOWNSHIP}/cases?show=all", headers=ADMIN_HEADERS).json) == 2


def test_the_openapi_document_lists_the_case_endpoints(system, web):
    paths = web.get("/openapi.json").json["paths"]
    for path in ("/api/v1/my/cases", "/api/v1/cases/{case_id}", "/api/v1/cases/{case_id}/accept",
                 "/api/v1/cases/{case_id}/escalate", "/api/v1/cases/{case_id}/supervise",
                 "/api/v1/townships/{code}/sla-policy", "/api/v1/townships/{code}/cases"):
        assert path in paths, path


# -- every action, someone else's case ------------------------------------------------------------

HOLDER_ACTIONS = [("accept", {}), ("progress", {"note": "进展"}), ("resolve", {"note": "修好了"}),
                  ("escalate", {"reason": "beyond_ability"}), ("supervisions/{sid}/answer", {"note": "收到"})]
STAFF_ACTIONS = [("POST", "reassign", {"unit_id": "{township_unit}"}), ("PATCH", "", {"tier": "complex"}),
                 ("POST", "supervise", {"note": "请尽快办理"})]


@pytest.fixture
def supervised(system, web, setup):
    p, case_id, lead = setup
    resp = post(web, f"{case_id}/supervise", {"note": "请尽快办理"}, token(system, "staff"))
    post(web, f"{case_id}/accept", {}, lead)
    return p, case_id, lead, resp.json["supervisions"][0]["id"]


@pytest.mark.parametrize("action,body", HOLDER_ACTIONS, ids=[a.split("/")[0] for a, _ in HOLDER_ACTIONS])
def test_holder_actions_on_a_case_that_is_not_the_callers_are_404(system, web, supervised, action, body):
    p, case_id, lead, sid = supervised
    path = f"{case_id}/{action.format(sid=sid)}"
    assert system.drain()  # the relay's own writes are done
    before = case(system, case_id)["version"]
    for stranger in (other_lead(system, p), same_post_other_township(system, p),
                     token(system, "staff", townships=(OTHER,)), token(system, "lead", name="无岗位")):
        resp = post(web, path, body, stranger)
        assert resp.status_code == 404 and resp.json["message"] == "未找到该工单", stranger
    assert case(system, case_id)["version"] == before  # nothing written


@pytest.mark.parametrize("method,action,body", STAFF_ACTIONS, ids=["reassign", "recategorise", "supervise"])
def test_staff_actions_from_another_township_are_404_and_from_a_lead_403(system, web, setup, method, action,
                                                                          body):
    p, case_id, lead = setup
    body = {k: v.format(township_unit=p["township"]["_id"]) for k, v in body.items()}
    url = f"/api/v1/cases/{case_id}" + (f"/{action}" if action else "")
    call = web.post if method == "POST" else web.patch
    assert call(url, json=body, headers=token(system, "staff", townships=(OTHER,))).status_code == 404
    assert call(url, json=body, headers=lead).status_code == 403
    assert call(url, json=body, headers=token(system, "client")).status_code == 403
    assert call(url.replace(case_id, "no-such-case"), json=body, headers=token(system, "staff")).status_code == 404
    assert call(url, json=body, headers=token(system, "staff")).status_code == 200
