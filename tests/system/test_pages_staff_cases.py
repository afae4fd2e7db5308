"""The township staff's case list over HTTP (no browser): filters, 督办, 改派 and 调整类别 through the
desk; bad input keeps what was typed with a Chinese message; no session → sign-in; another
township (or a case under another township's address) → 404; a write without the CSRF value
changes nothing."""
from __future__ import annotations

import pytest

from tests.support.dispatch import TOWNSHIP, case, posts, submit
from tests.support.runtime import ADMIN_HEADERS
from tests.support.signin import csrf, sign_in_page

STAFF_PHONE = "13700000002"
OTHER = "430382101"


@pytest.fixture
def staff_web(system, web, demo):
    """The test client signed in through the pages as the township's staff (the session cookie)."""
    assert system.drain(15)
    made = web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "李娟", "phone": STAFF_PHONE, "township": TOWNSHIP})
    assert made.status_code == 201, made.get_data(as_text=True)
    return sign_in_page(web, system, STAFF_PHONE, "/staff/", "10.0.0.8")


def test_the_list_filters_the_townships_open_cases(system, staff_web):
    case_id = submit(system, staff_web)
    page = staff_web.get(f"/staff/{TOWNSHIP}/cases").get_data(as_text=True)
    assert f'data-case-id="{case_id}"' in page and 'id="filter-paused"' in page
    assert f'data-case-id="{case_id}"' not in staff_web.get(f"/staff/{TOWNSHIP}/cases?show=accepted").get_data(as_text=True)
    assert f"/staff/{TOWNSHIP}/cases" in staff_web.get("/staff/").get_data(as_text=True)
    assert f"/staff/{TOWNSHIP}/cases" in staff_web.get(f"/board/{TOWNSHIP}").get_data(as_text=True)


def test_staff_supervise_reassign_and_recategorise(system, staff_web):
    case_id = submit(system, staff_web)
    path = f"/staff/{TOWNSHIP}/cases/{case_id}"
    short = staff_web.post(f"{path}/supervise", data={"csrf_token": csrf(staff_web), "note": "快"})
    assert short.status_code == 422 and "请写2到500个字" in short.get_data(as_text=True)
    assert "快</textarea>" in short.get_data(as_text=True)
    done = staff_web.post(f"{path}/supervise", data={"csrf_token": csrf(staff_web), "note": "请今天之内联系群众"})
    assert done.status_code == 303 and done.headers["Location"].endswith("done=supervise")
    assert case(system, case_id)["supervisions"][-1]["note"] == "请今天之内联系群众"
    nothing = staff_web.post(f"{path}/recategorise", data={"csrf_token": csrf(staff_web), "note": "看错了"})
    text = nothing.get_data(as_text=True)
    assert nothing.status_code == 422 and "请选择新的类别或难度" in text and "看错了</textarea>" in text
    staff_web.post(f"{path}/recategorise", data={"csrf_token": csrf(staff_web), "category": "road"})
    assert case(system, case_id)["category"] == "road"
    unpicked = staff_web.post(f"{path}/reassign", data={"csrf_token": csrf(staff_web), "note": "换人"})
    assert unpicked.status_code == 422 and "请选择改派给哪个岗位" in unpicked.get_data(as_text=True)
    group = posts(system)["group"]
    moved = staff_web.post(f"{path}/reassign", data={"csrf_token": csrf(staff_web), "unit_id": group["_id"]})
    assert moved.status_code == 303
    assert case(system, case_id)["unit_id"] == group["_id"]


def test_the_walls(system, web, staff_web):
    case_id = submit(system, staff_web)
    assert staff_web.get(f"/staff/{OTHER}/cases").status_code == 404
    assert staff_web.get(f"/staff/{OTHER}/cases/{case_id}").status_code == 404
    foreign = staff_web.post(f"/staff/{OTHER}/cases/{case_id}/supervise",
                             data={"csrf_token": csrf(staff_web), "note": "请今天之内联系群众"})
    assert foreign.status_code == 404
    forged = staff_web.post(f"/staff/{TOWNSHIP}/cases/{case_id}/supervise", data={"note": "请今天之内联系群众"})
    assert forged.status_code in (403, 422)
    assert not case(system, case_id).get("supervisions")
    staff_web.post("/signout", data={"csrf_token": csrf(staff_web)})
    for where in (f"/staff/{TOWNSHIP}/cases", f"/staff/{TOWNSHIP}/cases/{case_id}"):
        assert staff_web.get(where).headers["Location"].startswith("/signin?next=")
    assert staff_web.post(f"/staff/{TOWNSHIP}/cases/{case_id}/supervise").headers["Location"].startswith("/signin")
