"""Instant answers (the "0" of 0211): the matcher measured on the labelled question set, a confident
answer opens no case, "this didn't answer me" turns it into a general case, and staff manage the
knowledge base (CRUD, spreadsheet import, a dry-run match)."""
from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import openpyxl
import pytest

from shared.domain.ids import case_id_for
from services.intake import faq
from services.intake.kb_demo import demo_kb_csv
from services.intake.knowledge import read_sheet
from shared.cli import _load_demo
from tests.support.runtime import ADMIN_HEADERS, token

TOWNSHIP = "430382100"
OTHER = "430382101"


# -- the matcher, measured ---------------------------------------------------------------------------
# -- through the API -----------------------------------------------------------------------------------
@pytest.fixture
def demo(system):
    return _load_demo(system)


def client(system, township=TOWNSHIP):
    return token(system, "client", townships=(township,))


def body(description: str, **kw) -> dict:
    out = {"township": TOWNSHIP, "category": "social", "description": description, "reporter_phone": "13973200001",
           "address": "韶山村一组12号", "channel": "mini_program"}
    out.update(kw)
    return out


def dispatch_case(system, report_id):
    return system.service("dispatch").api["cases"].get(case_id_for(report_id))


def test_a_common_question_is_answered_at_once_and_opens_no_case(system, web, demo):
    resp = web.post("/api/v1/reports", json=body("我妈的养老认证还没做，怎么弄啊"), headers=client(system))
    assert resp.status_code == 201, resp.json
    created = resp.json
    assert created["status"] == "answered" and created["tier"] == "instant"
    assert created["answer"]["entry_code"] == "yl-rz" and "刷脸认证" in created["answer"]["answer"]
    assert created["resident_token"].startswith("szr1.")
    assert system.drain()
    assert dispatch_case(system, created["id"]) is None          # no case, no lead disturbed
    assert system.service("notify").api["service"].deliveries.count() == 0
    view = web.get(f"/api/v1/reports/{created['tracking_no']}", headers=client(system)).json
    assert view["status"] == "answered" and view["status_text"].startswith("已即时答复")
    assert view["timeline"][-1]["type"] == "answered"
    # The report's own resident token reads it; it opens nothing else.
    mine = {"Authorization": f"Bearer {created['resident_token']}"}
    assert web.get(f"/api/v1/reports/{created['id']}", headers=mine).status_code == 200
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/kb", headers=mine).status_code == 401


def test_didnt_answer_me_turns_it_into_a_general_case(system, web, demo):
    created = web.post("/api/v1/reports", json=body("低保怎么申请"), headers=client(system)).json
    assert created["status"] == "answered"
    path = f"/api/v1/reports/{created['tracking_no']}/not-answered"
    # Only the resident who asked: the proof is the phone's last four digits (or the resident token).
    assert web.post(path, json={"phone_last4": "9999"}, headers=client(system)).status_code == 404
    assert web.post(path, json={}, headers=client(system)).status_code == 404
    assert web.post(path, json={"phone_last4": "0001"}, headers=client(system, OTHER)).status_code == 404
    assert web.post(path, json={"phone_last4": "0001"}, headers=token(system, "staff")).status_code == 403
    assert web.post(path, json={"phone_last4": "0001"}).status_code == 401
    assert web.post(path, json={"phone_last4": "12"}, headers=client(system)).status_code == 422
    resp = web.post(path, json={"phone_last4": "0001", "note": "我家情况特殊，想当面问"}, headers=client(system))
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "submitted" and resp.json["tier"] == "general"
    assert "转人工办理" in resp.json["timeline"][-1]["text"]
    assert system.drain()
    case = dispatch_case(system, created["id"])
    assert case is not None and case["tier"] == "general" and case["level"] == "neighbourhood"
    view = web.get(f"/api/v1/reports/{created['id']}", headers=client(system)).json
    assert view["status"] == "assigned" and view["answer"]["declined_at"]
    again = web.post(path, json={"phone_last4": "0001"}, headers=client(system))
    assert again.status_code == 409


def test_the_resident_token_is_proof_enough(system, web, demo):
    created = web.post("/api/v1/reports", json=body("80岁老人补贴怎么领"), headers=client(system)).json
    assert created["answer"]["entry_code"] == "gl-bt"
    other = web.post("/api/v1/reports", json=body("残疾证怎么办"), headers=client(system)).json
    path = f"/api/v1/reports/{created['id']}/not-answered"
    assert web.post(path, json={}, headers={"Authorization": f"Bearer {other['resident_token']}"}).status_code == 404
    assert web.post(path, json={}, headers={"Authorization": "Bearer szr1.forged"}).status_code == 401
    assert web.post(path, json={}, headers={"Authorization": f"Bearer {created['resident_token']}"}).status_code == 200


def test_wrong_proofs_lock_the_report_for_an_hour(system, web, demo, clock):
    created = web.post("/api/v1/reports", json=body("社保卡掉了怎么办"), headers=client(system)).json
    path = f"/api/v1/reports/{created['id']}/not-answered"
    for guess in ("1111", "2222", "3333", "4444", "5555"):
        assert web.post(path, json={"phone_last4": guess}, headers=client(system)).status_code == 404
    assert web.post(path, json={"phone_last4": "0001"}, headers=client(system)).status_code == 404  # locked
    clock.advance(hours=1, minutes=1)
    assert web.post(path, json={"phone_last4": "0001"}, headers=client(system)).status_code == 200


def test_problems_and_urgent_reports_go_to_a_person(system, web, demo):
    for description, extra in (("门口路灯坏了一个星期，晚上出行不安全", {"category": "environment"}),
                               ("低保评得不公平，有钱的人也吃低保", {}),
                               ("临时救助怎么申请", {"urgent": True}),
                               ("临时救助怎么申请", {"channel": "lead"})):
        resp = web.post("/api/v1/reports", json=body(description, **extra), headers=client(system))
        assert resp.status_code == 201 and resp.json["status"] == "submitted", (description, extra)
    assert system.drain()


def test_instant_answers_can_be_switched_off_per_township(system, web, demo):
    staff = token(system, "staff")
    resp = web.put(f"/api/v1/townships/{TOWNSHIP}/resident-settings", json={"instant_answers": False}, headers=staff)
    assert resp.status_code == 200 and resp.json["instant_answers"] is False
    created = web.post("/api/v1/reports", json=body("低保怎么申请"), headers=client(system)).json
    assert created["status"] == "submitted"
    bad = web.put(f"/api/v1/townships/{TOWNSHIP}/resident-settings", json={"followup_after_days": 0}, headers=staff)
    assert bad.status_code == 422 and "followup_after_days" in bad.json["errors"]["json"]
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/resident-settings",
                   headers=token(system, "staff", townships=(OTHER,))).status_code == 404


# -- the knowledge base, managed by staff -----------------------------------------------------------------
def test_knowledge_base_crud(system, web, demo):
    staff = token(system, "staff")
    base = f"/api/v1/townships/{TOWNSHIP}/kb"
    listed = web.get(base, headers=staff)
    assert listed.status_code == 200 and len(listed.json) == 24
    entry = {"code": "gjj-tq", "question": "住房公积金怎么提取？", "answer": "带身份证到县公积金中心，或用“湘易办”App 申请。",
             "keywords": ["公积金", "提取公积金"], "category": "住房"}
    before = web.post(f"{base}/match", json={"text": "住房公积金怎么提取"}, headers=staff).json
    assert before["answered"] is False
    created = web.post(base, json=entry, headers=staff)
    assert created.status_code == 201 and created.json["code"] == "gjj-tq"
    assert web.post(base, json=entry, headers=staff).status_code == 409
    # The matcher is rebuilt from the new revision: the next question is answered from the new entry.
    after = web.post(f"{base}/match", json={"text": "住房公积金怎么提取"}, headers=staff).json
    assert after["answered"] is True and after["entry"]["code"] == "gjj-tq"
    changed = web.put(f"{base}/gjj-tq", json={**entry, "answer": "到县住房公积金管理中心窗口办理。"}, headers=staff)
    assert changed.status_code == 200 and changed.json["answer"].startswith("到县住房公积金")
    assert web.put(f"{base}/gjj-tq", json={**entry, "code": "other"}, headers=staff).status_code == 422
    for bad, field in (({**entry, "question": "x"}, "question"), ({**entry, "answer": ""}, "answer"),
                       ({**entry, "code": "有中文"}, "code"), ({**entry, "status": "on"}, "status"),
                       ({k: v for k, v in entry.items() if k != "answer"}, "answer")):
        resp = web.post(base, json=bad, headers=staff)
        assert resp.status_code == 422 and field in resp.json["errors"]["json"], bad
    assert web.get(base, headers=token(system, "lead", unit_id="x")).status_code == 403
    assert web.get(base, headers=client(system)).status_code == 403
    assert web.get(f"/api/v1/townships/{OTHER}/kb", headers=staff).status_code == 404
    assert web.get(base, headers=token(system, "staff", townships=(OTHER,))).status_code == 404
    assert web.delete(f"{base}/gjj-tq", headers=staff).status_code == 204
    assert web.get(f"{base}/gjj-tq", headers=staff).status_code == 404
    assert web.delete(f"{base}/gjj-tq", headers=staff).status_code == 404
    assert web.post(f"{base}/match", json={"text": "住房公积金怎么提取"}, headers=staff).json["answered"] is False


def _xlsx(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_knowledge_base_import_from_a_spreadsheet(system, web):
    staff = token(system, "staff")
    url = f"/api/v1/townships/{TOWNSHIP}/kb/import"
    data = _xlsx([["类别", "问题", "答案", "关键词"],
                  ["证件", "身份证丢了怎么补办？", "到派出所户籍窗口补领，带户口簿。", "身份证、补办身份证、挂失"],
                  ["医保", "城乡居民医保怎么缴费？", "通过“湘税社保”小程序或村(社区)代收缴纳。", "医保缴费，交医保"]])
    resp = web.post(url, data={"file": (io.BytesIO(data), "常见问题.xlsx")}, headers=staff,
                    content_type="multipart/form-data")
    assert resp.status_code == 201, resp.json
    assert resp.json == {"township": TOWNSHIP, "total": 2, "created": 2, "updated": 0, "unchanged": 0, "removed": 0}
    again = web.post(url, data={"file": (io.BytesIO(data), "常见问题.xlsx")}, headers=staff,
                     content_type="multipart/form-data")
    assert again.json["unchanged"] == 2 and again.json["created"] == 0
    entries = web.get(f"/api/v1/townships/{TOWNSHIP}/kb", headers=staff).json
    assert len(entries) == 2 and ["医保缴费", "交医保"] in [e["keywords"] for e in entries]
    # A GBK CSV as Excel saves it, posted as a raw body; replace=true drops what the file no longer has.
    csv_body = "问题,答案,关键词,类别\r\n低保怎么申请？,到村(社区)提出申请。,低保,救助\r\n".encode("gbk")
    resp = web.post(f"{url}?filename=kb.csv&replace=true", data=csv_body, headers=staff, content_type="text/csv")
    assert resp.status_code == 201 and resp.json["created"] == 1 and resp.json["removed"] == 2
    # A bad file is refused whole, each problem with its row.
    bad = _xlsx([["问题", "关键词"], ["有问题没答案", "x"]])
    resp = web.post(url, data={"file": (io.BytesIO(bad), "bad.xlsx")}, headers=staff, content_type="multipart/form-data")
    assert resp.status_code == 422 and resp.json["errors"]["file"][0]["column"] == "答案"
    bad = "问题,答案,编号\r\n社保卡丢了,去银行补办,a1\r\n,没有问题,a2\r\n医保,答,a1\r\n".encode()
    resp = web.post(f"{url}?filename=kb.csv", data=bad, headers=staff, content_type="text/csv")
    assert resp.status_code == 422
    assert {(e["row"], e["column"]) for e in resp.json["errors"]["file"]} >= {(3, "问题"), (4, "编号")}
    assert len(web.get(f"/api/v1/townships/{TOWNSHIP}/kb", headers=staff).json) == 1
    assert web.post(url, data=csv_body, headers=ADMIN_HEADERS, content_type="text/csv").status_code == 201


def _office_kb(rows: list[list]) -> bytes:
    """A knowledge base as a township office keeps it: a title row merged across, a 类别 cell merged
    over its questions, a notes row at the end."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["清溪镇便民问答（2026年）"])
    sheet.merge_cells("A1:D1")
    for row in rows:
        sheet.append(row)
    sheet.merge_cells(f"A3:A{sheet.max_row}")
    sheet.append(["制表人：王红"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_knowledge_base_dry_run_shows_the_change_and_writes_nothing(system, web):
    staff = token(system, "staff")
    url = f"/api/v1/townships/{TOWNSHIP}/kb/import"
    header = ["类别", "编号", "问题", "答案"]
    first = _office_kb([header, ["证件", "sfz", "身份证丢了怎么补办？", "到派出所户籍窗口补领。"],
                        [None, "hkb", "户口簿怎么迁入？", "到派出所办理。"]])
    preview = web.post(f"{url}?filename=kb.xlsx&dry_run=true", data=first, headers=staff,
                       content_type="application/octet-stream")
    assert preview.status_code == 200, preview.json
    assert preview.json["summary"] == {"added": 2, "changed": 0, "removed": 0, "unchanged": 0}
    assert [n["row"] for n in preview.json["notices"]] == [2, 5]  # header on row 2; 制表人 set aside
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/kb", headers=staff).json == []
    assert web.post(f"{url}?filename=kb.xlsx", data=first, headers=staff,
                    content_type="application/octet-stream").status_code == 201
    entries = web.get(f"/api/v1/townships/{TOWNSHIP}/kb", headers=staff).json
    assert {e["code"]: e["category"] for e in entries} == {"sfz": "证件", "hkb": "证件"}  # the merged 类别
    second = _office_kb([header, ["证件", "sfz", "身份证丢了怎么补办？", "带户口簿到派出所户籍窗口补领。"]])
    preview = web.post(f"{url}?filename=kb.xlsx&dry_run=true&replace=true", data=second, headers=staff,
                       content_type="application/octet-stream").json
    assert preview["changed"] is True
    assert preview["changes"]["changed"] == [{"code": "sfz", "question": "身份证丢了怎么补办？", "fields": ["answer"]}]
    assert preview["changes"]["removed"] == [{"code": "hkb", "question": "户口簿怎么迁入？"}]
    assert web.get(f"/api/v1/townships/{TOWNSHIP}/kb", headers=staff).json == entries
    web.delete(f"/api/v1/townships/{TOWNSHIP}/kb/hkb", headers=staff)  # meanwhile, an entry is deleted by hand
    stale = web.post(f"{url}?filename=kb.xlsx&replace=true&base={preview['base']}", data=second, headers=staff,
                     content_type="application/octet-stream")
    assert stale.status_code == 409 and "请重新预览" in stale.json["message"]
    assert len(web.get(f"/api/v1/townships/{TOWNSHIP}/kb", headers=staff).json) == 1
    assert web.post(f"{url}?filename=kb.xlsx", data=first, headers=staff,
                    content_type="application/octet-stream").json["created"] == 1
    same = web.post(f"{url}?filename=kb.xlsx&dry_run=true", data=first, headers=staff,
                    content_type="application/octet-stream").json
    assert same["changed"] is False and same["summary"]["unchanged"] == 2


def test_the_knowledge_base_is_warmed_at_start_up_not_by_the_first_report(system, demo):
    """Issue 16: jieba's dictionary and each township's matcher are built by the runtime's warm-up
    thread after the fork; a new process over the same store finds them ready before any report."""
    intake = system.service("intake")
    assert intake.warm_ups, "intake declares its warm-ups"
    kb = intake.api["kb"]
    kb._matchers.clear()  # as a newly forked worker holds it
    assert kb.warm() == 1
    built = kb._matchers[TOWNSHIP][1]
    assert kb.matcher(TOWNSHIP) is built  # the first report reuses it
    assert faq._tokenizer is not None
