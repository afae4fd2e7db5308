"""dispatch keeps a co-handling department's opinion (配合意见) and its files on a referred case (pure)."""
from __future__ import annotations

from datetime import datetime, timezone

from services.dispatch.department_events import handlers
from services.dispatch.web.timeline import timeline_items
from shared.aggregates import Aggregates
from shared.clock import FakeClock
from tests.support.fakes.memory_store import MemoryStore

AT = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)


def _cases(status="referred"):
    cases = Aggregates(MemoryStore().collection("cases"), FakeClock(AT))
    cases.add({"_id": "c1", "status": status, "timeline": []})
    return cases


def _part(event_id="e1", attachments=("/dept/files/abc",)):
    return {"id": event_id, "type": "department.part_submitted", "occurred_at": "2026-11-02T01:00:00.000000Z",
            "payload": {"case_id": "c1", "department_id": "d-dx", "department_name": "电信公司",
                        "note": "已完成线路检查", "attachments": list(attachments), "actor": "王工"}}


def test_the_opinion_and_its_files_are_kept_once_with_a_timeline_entry():
    cases = _cases()
    on_part = handlers(cases, FakeClock(AT))["department.part_submitted"]
    on_part(_part())
    on_part(_part())  # redelivered: nothing twice
    case = cases.get("c1")
    assert case["department_parts"] == [{"department_id": "d-dx", "department_name": "电信公司", "note": "已完成线路检查",
                                         "attachments": ["/dept/files/abc"], "at": "2026-11-02T01:00:00.000000Z",
                                         "by": "王工"}]
    assert [e["type"] for e in case["timeline"]] == ["department_part"]
    assert timeline_items(case)[0]["text"] == "配合部门意见：电信公司（已完成线路检查）"


def test_a_case_no_longer_with_the_departments_is_left_as_it_is():
    cases = _cases(status="resolved")
    handlers(cases, FakeClock(AT))["department.part_submitted"](_part())
    assert "department_parts" not in cases.get("c1") and cases.get("c1")["timeline"] == []


def test_an_unknown_case_is_logged_not_raised():
    cases = Aggregates(MemoryStore().collection("cases"), FakeClock(AT))
    assert handlers(cases, FakeClock(AT))["department.part_submitted"](_part()) is None
