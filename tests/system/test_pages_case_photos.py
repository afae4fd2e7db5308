"""Photos on a case, over HTTP (no browser): intake announces every photo attached to a report
(report.photo_added) and dispatch lists it once on the case; the lead's case page shows the photos,
the address and the location, and sends photos with 办结 to intake's page route (plain form, no
script) — only the lead whose post holds the case, by the file's bytes, ≤5 MB, ≤9 a report; a bad
file comes back next to the field in Chinese and nothing is kept; the resolved case's timeline says
how many photos came with it; the resident's track page and the staff's case page show them."""
from __future__ import annotations

import io

import pytest

from services.intake.photos import MAX_BYTES
from shared.domain.ids import case_id_for
from shared.events import make_event
from tests.support.dispatch import TOWNSHIP, case, holder, posts, submit
from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.signin import csrf, sign_in_page
from tests.system.test_resident_photos import jpeg, png

OTHER = "430382101"
STAFF_PHONE = "13700000002"


@pytest.fixture
def lead_web(system, web, demo):
    """The test client signed in through the pages as the demo path's 邻长."""
    assert system.drain(15)
    return sign_in_page(web, system, posts(system)["neighbourhood"]["lead"]["phone"], "/lead/", "10.0.0.9")


def report_of(system, case_id: str) -> dict:
    return system.service("intake").api["reports"].get(case(system, case_id)["report_id"])


def send(client, case_id: str, report_id: str, files, *, token_value=None, json=False, next_=None):
    data = {"photos": [(io.BytesIO(b), n) for b, n in files]}
    if token_value is not None:
        data["csrf_token"] = token_value
    headers = {"Accept": "application/json"} if json else {}
    return client.post(f"/resident/handling/{report_id}/photos",
                       query_string={"next": next_ if next_ is not None else f"/lead/cases/{case_id}"},
                       data=data, headers=headers, content_type="multipart/form-data")


def accepted(system, client, **extra) -> str:
    case_id = submit(system, client, **extra)
    assert client.post(f"/lead/cases/{case_id}/accept", data={"csrf_token": csrf(client)}).status_code == 303
    return case_id


def test_the_lead_sends_photos_with_banjie_and_everyone_sees_them(system, lead_web):
    case_id = accepted(system, lead_web, location={"lat": 27.915, "lng": 112.526})
    report = report_of(system, case_id)
    page = lead_web.get(f"/lead/cases/{case_id}").get_data(as_text=True)
    action = f"/resident/handling/{report['_id']}/photos?next=/lead/cases/{case_id}"
    assert f'action="{action}"' in page and 'enctype="multipart/form-data"' in page
    assert 'id="location"' in page and "北纬27.91500" in page and "韶山村一组12号" in page

    sent = send(lead_web, case_id, report["_id"], [(png(), "after.png"), (jpeg(), "after2.jpg")],
                token_value=csrf(lead_web))
    assert sent.status_code == 303 and sent.headers["Location"] == f"/lead/cases/{case_id}?done=photos"
    assert system.drain()
    photos = case(system, case_id)["photos"]
    assert [p["by"] for p in photos] == ["lead", "lead"]
    page = lead_web.get(f"/lead/cases/{case_id}?done=photos").get_data(as_text=True)
    assert "照片已上传" in page and page.count('<img src="/api/v1/photos/') == 2
    # the photo itself, read with the lead's page session (intake, same address)
    got = lead_web.get(photos[0]["url"])
    assert got.status_code == 200 and got.content_type == "image/png"

    done = lead_web.post(f"/lead/cases/{case_id}/resolve", data={"csrf_token": csrf(lead_web), "note": "已更换路灯灯泡"})
    assert done.status_code == 303 and system.drain()
    page = lead_web.get(f"/lead/cases/{case_id}").get_data(as_text=True)
    assert "办结，附照片2张（已更换路灯灯泡）" in page

    # the resident's track page (intake) lists the lead's photos
    track = lead_web.post(f"/resident/{TOWNSHIP}/track", data={"tracking_no": report["tracking_no"], "phone_last4": "0001"})
    assert track.status_code == 303
    page = lead_web.get(track.headers["Location"]).get_data(as_text=True)
    assert all(f"/photos/{p['id']}" in page for p in photos)


def test_the_staff_case_page_shows_the_photos(system, web, demo):
    assert system.drain(15)
    made = web.post("/api/v1/accounts", headers=ADMIN_HEADERS, json={
        "kind": "staff", "name": "李娟", "phone": STAFF_PHONE, "township": TOWNSHIP})
    assert made.status_code == 201
    staff = sign_in_page(web, system, STAFF_PHONE, "/staff/")
    case_id = submit(system, staff)
    report = report_of(system, case_id)
    up = web.post(f"/api/v1/reports/{report['_id']}/photos", data={"file": (io.BytesIO(jpeg()), "a.jpg"), "phone_last4": "0001"},
                  headers=token(system, "client"), content_type="multipart/form-data")
    assert up.status_code == 201 and system.drain()
    page = staff.get(f"/staff/{TOWNSHIP}/cases/{case_id}").get_data(as_text=True)
    assert f'<img src="{up.json["photo"]["url"]}"' in page and "群众上传的照片1" in page
    assert staff.get(up.json["photo"]["url"]).status_code == 200


def test_bad_files_come_back_next_to_the_field_and_nothing_is_kept(system, lead_web):
    case_id = accepted(system, lead_web)
    report_id = case(system, case_id)["report_id"]
    token_value = csrf(lead_web)
    cases = {"type": [(b"GIF89a" + b"\x00" * 64, "x.jpg")], "missing": [],
             "size": [(jpeg(MAX_BYTES), "big.jpg")], "count": [(png(i + 2, 1), f"{i}.png") for i in range(10)]}
    for key, files in cases.items():
        sent = send(lead_web, case_id, report_id, [(png(30, 1), "ok.png"), *files] if key == "type" else files,
                    token_value=token_value)
        assert sent.status_code == 303 and sent.headers["Location"] == f"/lead/cases/{case_id}?photo={key}", key
    page = lead_web.get(f"/lead/cases/{case_id}?photo=type").get_data(as_text=True)
    assert 'id="photo-files-error"' in page and "只能上传照片（JPEG、PNG或WebP格式）" in page
    assert 'aria-describedby="photo-files-error"' in page
    as_json = send(lead_web, case_id, report_id, [(b"<html>", "x.png")], token_value=token_value, json=True)
    assert as_json.status_code == 415 and as_json.json == {
        "message": "只能上传照片（JPEG、PNG或WebP格式）", "field": "photos", "code": "type"}
    forged = send(lead_web, case_id, report_id, [(png(), "a.png")])   # no CSRF value
    assert forged.status_code == 303 and forged.headers["Location"].endswith("?photo=expired")
    assert system.drain()
    assert not report_of(system, case_id).get("uploads") and not case(system, case_id).get("photos")


def test_the_walls(system, web, lead_web):
    case_id = accepted(system, lead_web)
    report_id = case(system, case_id)["report_id"]
    # a lead of another post (the 组长 above) may neither send nor read the case's photos
    other_post = sign_in_page(web.application.test_client(), system, posts(system)["group"]["lead"]["phone"], "/lead/")
    refused = send(other_post, case_id, report_id, [(png(), "a.png")], token_value=csrf(other_post))
    assert refused.status_code == 403 and "只有经办该诉求的三长可以上传照片" in refused.get_data(as_text=True)
    sent = send(lead_web, case_id, report_id, [(png(), "a.png")], token_value=csrf(lead_web))
    assert sent.status_code == 303 and system.drain()
    url = case(system, case_id)["photos"][0]["url"]
    assert other_post.get(url).status_code == 404
    assert other_post.get(f"/lead/cases/{case_id}").status_code == 404
    # a report of another township is not found; its photo neither
    foreign = web.post("/api/v1/reports", json={
        "township": OTHER, "category": "road", "address": "银田村三组", "channel": "mini_program",
        "description": "村口的路塌了一块，车过不去", "reporter_phone": "13800000009"},
        headers=token(system, "client", townships=(OTHER,)))
    assert foreign.status_code == 201 and system.drain()
    away = send(lead_web, case_id, foreign.json["id"], [(png(), "a.png")], token_value=csrf(lead_web))
    assert away.status_code == 404
    theirs = web.post(f"/api/v1/reports/{foreign.json['id']}/photos", data={"file": (io.BytesIO(jpeg()), "a.jpg")},
                      headers={"Authorization": f"Bearer {foreign.json['resident_token']}"},
                      content_type="multipart/form-data")
    assert theirs.status_code == 201
    assert lead_web.get(theirs.json["photo"]["url"]).status_code == 404
    # the resident of another report cannot read this case's photo
    assert web.get(url, headers={"Authorization": f"Bearer {foreign.json['resident_token']}"}).status_code == 404
    # no open redirect: a "next" that is not a case page is replaced by the workbench
    elsewhere = send(lead_web, case_id, report_id, [(jpeg(), "b.jpg")], token_value=csrf(lead_web),
                     next_="https://evil.example/lead/cases/x")
    assert elsewhere.status_code == 303 and elsewhere.headers["Location"] == "/lead/?done=photos"
    # without a session: sign in first
    anonymous = send(web.application.test_client(), case_id, report_id, [(png(), "a.png")])
    assert anonymous.status_code == 303 and anonymous.headers["Location"].startswith("/signin?next=/lead/cases/")


def test_photo_added_is_listed_once(system, web, demo):
    """The same photo twice (a redelivery, or a second event naming the same address) is listed once;
    a photo whose event comes before its case is handed back to be delivered again."""
    case_id = submit(system, web)
    doc = case(system, case_id)
    handler = system.service("dispatch").handlers["report.photo_added"]
    payload = {"report_id": doc["report_id"], "tracking_no": doc["tracking_no"], "photo_id": "p1",
               "url": "/api/v1/photos/p1", "content_type": "image/jpeg", "by": "lead", "added_at": doc["created_at"]}
    event = make_event("report.photo_added", TOWNSHIP, payload, at=system.clock.now(), correlation_id=doc["report_id"])
    handler(event)
    handler(event)
    handler(make_event("report.photo_added", TOWNSHIP, payload, at=system.clock.now(), correlation_id=None))
    assert [p["id"] for p in case(system, case_id)["photos"]] == ["p1"]
    early = make_event("report.photo_added", TOWNSHIP, {**payload, "report_id": "not-yet"}, at=system.clock.now(),
                       correlation_id=None)
    with pytest.raises(Exception, match="before its case"):
        handler(early)
    assert case(system, case_id_for("not-yet")) is None


def test_the_photo_reaches_the_case_over_rabbitmq(tmp_path, amqp_url):
    """report.photo_added is bound to dispatch's queue (a publish nobody binds would be refused);
    a photo sent before dispatch opened the case is delivered again until it has."""
    import time

    from shared.cli import _load_demo
    from shared.messaging.topology import delete_amqp
    from shared.runtime import SERVICES, Runtime, bindings
    from shared.web import create_app
    from tests.support.runtime import make_settings

    runtime = Runtime(make_settings(tmp_path, amqp_url=amqp_url), SERVICES)
    try:
        runtime.start()
        _load_demo(runtime)
        web = create_app(runtime).test_client()
        made = web.post("/api/v1/reports", headers=token(runtime, "client"), json={
            "township": TOWNSHIP, "category": "environment", "address": "韶山村一组12号", "channel": "mini_program",
            "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": "13800000001"})
        assert made.status_code == 201
        up = web.post(f"/api/v1/reports/{made.json['id']}/photos", data={"file": (io.BytesIO(jpeg()), "a.jpg")},
                      headers={"Authorization": f"Bearer {made.json['resident_token']}"},
                      content_type="multipart/form-data")
        assert up.status_code == 201
        cases = runtime.service("dispatch").api["cases"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (cases.get(case_id_for(made.json["id"])) or {}).get("photos"):
            time.sleep(0.1)
        photos = cases.get(case_id_for(made.json["id"]))["photos"]
        assert [(p["url"], p["by"]) for p in photos] == [(up.json["photo"]["url"], "resident")]
    finally:
        runtime.stop()
        delete_amqp(amqp_url, runtime.names, bindings())


def test_banjie_is_checked_before_its_photos_and_a_refused_one_stores_nothing(system, lead_web):
    """办结 with photos, as the page's script sends it: first the 办结 form is checked (every check,
    nothing stored), and only a 办结 that would be taken lets the photos go to intake. A bad note
    (or a case in the wrong state) answers 4xx JSON naming the field — no photo kept, case unchanged."""
    case_id = accepted(system, lead_web)
    report_id = case(system, case_id)["report_id"]
    token_value = csrf(lead_web)
    check = f"/lead/cases/{case_id}/resolve/check"
    headers = {"Accept": "application/json"}

    bad = lead_web.post(check, data={"csrf_token": token_value, "note": "好"}, headers=headers)
    assert bad.status_code == 422 and bad.json == {"field": "note", "message": "请写2到500个字"}
    missing = lead_web.post(check, data={"csrf_token": token_value}, headers=headers)
    assert missing.status_code == 422 and missing.json["field"] == "note"
    assert lead_web.post(check, data={"note": "已更换路灯灯泡"}, headers=headers).status_code == 403  # no CSRF token
    assert system.drain()
    assert case(system, case_id)["status"] == "accepted" and not case(system, case_id).get("photos")
    assert not report_of(system, case_id).get("uploads")

    good = lead_web.post(check, data={"csrf_token": token_value, "note": "已更换路灯灯泡"}, headers=headers)
    assert good.status_code == 200 and good.json == {"ok": True}
    assert case(system, case_id)["status"] == "accepted"   # a check stores nothing
    assert send(lead_web, case_id, report_id, [(png(), "after.png")], token_value=token_value, json=True).status_code == 201
    assert lead_web.post(f"/lead/cases/{case_id}/resolve",
                         data={"csrf_token": token_value, "note": "已更换路灯灯泡"}).status_code == 303
    assert system.drain() and case(system, case_id)["status"] == "resolved"

    # Resolved: a second 办结 would be refused, so its photos are never sent.
    again = lead_web.post(check, data={"csrf_token": token_value, "note": "再次办结"}, headers=headers)
    assert again.status_code == 409 and again.json["field"] == "form" and again.json["message"]
    assert lead_web.post("/lead/cases/nope/resolve/check", data={"csrf_token": token_value, "note": "已办"},
                         headers=headers).status_code == 404


def test_the_page_asks_for_the_check_before_it_uploads(system, lead_web):
    """kit.js uploads 办结's photos only after the address in data-check said yes."""
    case_id = accepted(system, lead_web)
    page = lead_web.get(f"/lead/cases/{case_id}").get_data(as_text=True)
    assert f'data-check="/lead/cases/{case_id}/resolve/check"' in page


def test_the_api_resolves_as_a_dry_run_first(system, web, lead_web):
    """The API's 办结 takes dry_run: the same answers as 办结, nothing stored (an app checks it
    before it uploads the photos to intake)."""
    case_id = accepted(system, lead_web)
    auth = holder(system, posts(system)["neighbourhood"])
    bad = web.post(f"/api/v1/cases/{case_id}/resolve", headers=auth, json={"note": " ", "dry_run": True})
    assert bad.status_code == 422 and "note" in bad.json["errors"]["json"]
    dry = web.post(f"/api/v1/cases/{case_id}/resolve", headers=auth, json={"note": "已更换路灯灯泡", "dry_run": True})
    assert dry.status_code == 200 and dry.json["status"] == "resolved"
    assert system.drain() and case(system, case_id)["status"] == "accepted"
    done = web.post(f"/api/v1/cases/{case_id}/resolve", headers=auth, json={"note": "已更换路灯灯泡"})
    assert done.status_code == 200 and case(system, case_id)["status"] == "resolved"


# -- 办结 names the photos it was sent with (not intake's clock against dispatch's) ----------------



def _clock_apart(system, case_id: str, hours: float) -> None:
    """intake's clock ``hours`` away from dispatch's: the case's photos as intake stamped them."""
    from datetime import timedelta

    from shared.clock import iso, parse_iso
    from tests.support.dispatch import api

    def change(doc):
        for photo in doc.get("photos") or ():
            photo["at"] = iso(parse_iso(photo["at"]) + timedelta(hours=hours))
        return []
    api(system)["cases"].mutate(case_id, change)


@pytest.mark.parametrize("hours", [1, -1])
def test_the_page_sends_banjie_with_its_photos_addresses_and_the_count_ignores_the_clocks(system, lead_web, hours):
    """What kit.js does: check, upload (intake answers with the photos' addresses), then 办结 with one
    hidden ``photos`` field per address. With intake's clock an hour ahead of dispatch's (or behind),
    the time window counted 0 photos for this 办结; its own list counts 1."""
    case_id = accepted(system, lead_web)
    report_id = case(system, case_id)["report_id"]
    token_value = csrf(lead_web)
    sent = send(lead_web, case_id, report_id, [(png(), "after.png")], token_value=token_value, json=True)
    assert sent.status_code == 201
    assert system.drain()
    addresses = [u["url"] for u in sent.json["uploads"]]
    assert addresses == [p["url"] for p in case(system, case_id)["photos"]]
    _clock_apart(system, case_id, hours)
    done = lead_web.post(f"/lead/cases/{case_id}/resolve",
                         data={"csrf_token": token_value, "note": "已更换路灯灯泡", "photos": addresses})
    assert done.status_code == 303 and system.drain()
    entry = [e for e in case(system, case_id)["timeline"] if e["type"] == "resolved"][-1]
    assert entry["photos"] == addresses
    page = lead_web.get(f"/lead/cases/{case_id}").get_data(as_text=True)
    assert "办结，附照片1张（已更换路灯灯泡）" in page


def test_a_bad_photo_list_is_refused_next_to_the_field_and_nothing_is_stored(system, lead_web):
    case_id = accepted(system, lead_web)
    token_value = csrf(lead_web)
    for photos, message in ((["/api/v1/photos/p1"], "照片地址不正确"),
                            ([f"/api/v1/photos/{i:032x}" for i in range(10)], "办结最多附9张照片")):
        check = lead_web.post(f"/lead/cases/{case_id}/resolve/check", headers={"Accept": "application/json"},
                              data={"csrf_token": token_value, "note": "已更换路灯灯泡", "photos": photos})
        assert check.status_code == 422 and check.json["field"] == "photos" and message in check.json["message"]
        page = lead_web.post(f"/lead/cases/{case_id}/resolve",
                             data={"csrf_token": token_value, "note": "已更换路灯灯泡", "photos": photos})
        assert page.status_code == 422 and message in page.get_data(as_text=True)
    assert system.drain() and case(system, case_id)["status"] == "accepted"


def test_the_api_resolves_with_the_photos_it_sent_even_before_dispatch_heard_of_them(system, web, lead_web):
    """An app uploads with intake's API (its answer has photo.url) and names them in 办结. A photo whose
    report.photo_added has not reached dispatch yet is still counted: the 办结's list counts."""
    case_id = accepted(system, lead_web)
    auth = holder(system, posts(system)["neighbourhood"])
    report_id = case(system, case_id)["report_id"]
    lead_token = {"Authorization": auth["Authorization"]}
    up = web.post(f"/api/v1/reports/{report_id}/photos", data={"file": (io.BytesIO(jpeg()), "a.jpg")},
                  headers=lead_token, content_type="multipart/form-data")
    assert up.status_code == 201, up.json
    assert system.drain()
    known = up.json["photo"]["url"]
    not_yet = "/api/v1/photos/" + "f" * 32   # its event still on its way
    for photos, field in ((["nope"], "photos"), ([known] * 10, "photos")):
        bad = web.post(f"/api/v1/cases/{case_id}/resolve", headers=auth, json={"note": "已办", "photos": photos})
        assert bad.status_code == 422 and field in bad.json["errors"]["json"], bad.json
    done = web.post(f"/api/v1/cases/{case_id}/resolve", headers=auth,
                    json={"note": "已更换路灯灯泡", "photos": [known, not_yet, known]})
    assert done.status_code == 200, done.json
    assert system.drain()
    entry = [e for e in case(system, case_id)["timeline"] if e["type"] == "resolved"][-1]
    assert entry["photos"] == [known, not_yet]
    assert [p["url"] for p in case(system, case_id)["photos"]] == [known]
    page = lead_web.get(f"/lead/cases/{case_id}").get_data(as_text=True)
    assert "办结，附照片2张（已更换路灯灯泡）" in page


def test_intakes_page_upload_answer_gives_the_photos_addresses(system, lead_web):
    case_id = accepted(system, lead_web)
    report_id = case(system, case_id)["report_id"]
    sent = send(lead_web, case_id, report_id, [(png(), "after.png"), (jpeg(), "b.jpg")], token_value=csrf(lead_web), json=True)
    assert sent.status_code == 201 and sent.json["photos"] == 2
    assert system.drain()
    assert [u["url"] for u in sent.json["uploads"]] == [p["url"] for p in case(system, case_id)["photos"]]
