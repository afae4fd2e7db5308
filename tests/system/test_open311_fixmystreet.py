"""FixMyStreet as a client of our Open311 endpoint, built from its public client (mysociety/fixmystreet,
perllib/Open311.pm and perllib/Open311/GetServiceRequestUpdates.pm + UpdatesBase.pm):

- ``send_service_request`` posts ``requests.xml`` form-encoded with description, service_code,
  first_name/last_name, email (phone only when it has one), lat/long (or address_string),
  ``attribute[…]``, media_url, jurisdiction_id and api_key; a private report's photos go as files
  ("photo1"…) in a multipart body instead of media_url. It reads ``request[0].service_request_id``.
- ``get_service_request_updates`` GETs ``servicerequestupdates.xml`` with api_key, jurisdiction_id,
  start_date and end_date (W3CDTF in UTC: the last two hours by default); ``check_date`` drops an
  update whose ``updated_datetime`` (in UTC) is outside them; an ``update_id`` it has seen is skipped;
  ``map_state`` turns the status into its own state.
- Every answer is parsed as XML::Simple does with ForceArray on the group tags and SuppressEmpty.
"""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from shared.domain.ids import case_id_for
from tests.support.dispatch import holder, posts
from tests.support.runtime import token

BASE = "/open311/v2"
TOWNSHIP = "430382100"
# Open311.pm _get_xml_object: these tags are always arrays.
FORCE_ARRAY = {"service", "attribute", "value", "request", "error", "request_update", "group"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
UTC = timezone.utc


@pytest.fixture
def fms(demo):
    """FixMyStreet's body configuration: its endpoint's api_key (a client token) and jurisdiction."""
    return {"api_key": demo["client"], "jurisdiction_id": TOWNSHIP}


# -- FixMyStreet's side ---------------------------------------------------------------------------
def xml_simple(body: bytes):
    """XML::Simple's parse_string with FixMyStreet's options: the root's content as a hash, leaves as
    text, empty elements as undef (None), the group tags' items always as lists."""
    def convert(element):
        children = list(element)
        if not children:
            return element.text if element.text else None
        out: dict = {}
        for child in children:
            value = convert(child)
            if child.tag in FORCE_ARRAY:
                out.setdefault(child.tag, []).append(value)
            elif child.tag in out:
                out[child.tag] = [out[child.tag]] if not isinstance(out[child.tag], list) else out[child.tag]
                out[child.tag].append(value)
            else:
                out[child.tag] = value
        return out

    return convert(ET.fromstring(body))


def w3cdtf(moment: datetime) -> str:
    """DateTime::Format::W3CDTF->format_datetime of a UTC DateTime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def map_state(status: str) -> str:
    """Open311.pm map_state (a body with extended statuses)."""
    state = status.lower().replace("_", " ")
    return {"fixed": "fixed - council", "not councils responsibility": "not responsible",
            "no further action": "unable to fix", "open": "confirmed", "closed": "closed"}.get(state, state)


def send_service_request(web, fms, *, photos: list[bytes] = (), **problem):
    """Open311::send_service_request: the params as _populate_service_request_params builds them."""
    params = {"description": "路口井盖缺了一块，晚上有人差点踩空", "service_code": "road",
              "first_name": "Alex", "last_name": "Chen", "email": "alex@example.org",
              "lat": "27.915023", "long": "112.527471", "attribute[easting]": "512345",
              "attribute[fixmystreet_id]": "4321", "media_url": "https://fms.example.org/photo/4321.0.jpeg",
              **fms, **problem}
    params = {k: v for k, v in params.items() if v is not None}
    if photos:
        params.pop("media_url", None)   # a private report: the photos are uploaded instead
        data = {**params, **{f"photo{i}": (io.BytesIO(p), f"{i}.jpeg", "image/jpeg")
                             for i, p in enumerate(photos, 1)}}
        return web.post(f"{BASE}/requests.xml", data=data, content_type="multipart/form-data")
    return web.post(f"{BASE}/requests.xml", data=params, content_type="application/x-www-form-urlencoded")


def request_id(resp) -> str:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    obj = xml_simple(resp.get_data())
    rid = obj["request"][0]["service_request_id"]
    assert isinstance(rid, str)   # "return $request_id unless ref $request_id"
    return rid


def process_error(resp) -> str:
    """Open311.pm _process_error: "code: description" per error."""
    obj = xml_simple(resp.get_data())
    return "".join(f"{e['code']}: {e['description']}\n" for e in obj["error"])


def get_service_request_updates(web, fms, start: datetime, end: datetime, fmt: str = "xml"):
    query = {"api_key": fms["api_key"], "start_date": w3cdtf(start), "end_date": w3cdtf(end),
             "jurisdiction_id": fms["jurisdiction_id"]}
    return web.get(f"{BASE}/servicerequestupdates.{fmt}", query_string=query)


def poll(web, fms, start: datetime, end: datetime, seen: set[str]) -> list[dict]:
    """GetServiceRequestUpdates.process_requests: the new, in-window updates of a poll."""
    resp = get_service_request_updates(web, fms, start, end)
    assert resp.status_code == 200 and resp.content_type == "text/xml; charset=utf-8"
    new = []
    for update in xml_simple(resp.get_data()).get("request_update") or []:
        if update.get("update_id") is None or update["update_id"] in seen:
            continue
        updated = datetime.fromisoformat(update["updated_datetime"])
        if not (w3cdtf(start) <= w3cdtf(updated) <= w3cdtf(end)):   # UpdatesBase::check_date
            continue
        seen.add(update["update_id"])
        new.append({**update, "state": map_state(update["status"])})
    return new


def report(system, tracking_no: str) -> dict:
    return system.service("intake").api["service"].in_township(TOWNSHIP, tracking_no)


# -- posting -------------------------------------------------------------------------------------------
def test_a_fixmystreet_report_with_lat_long_and_email_but_no_phone(system, web, fms):
    resp = send_service_request(web, fms)
    rid = request_id(resp)
    doc = report(system, rid)
    assert doc["reporter_phone"] is None and doc["reporter_email"] == "alex@example.org"
    assert doc["location"] == {"lat": 27.915023, "lng": 112.527471}
    assert doc["reporter_name"] == "Alex Chen" and doc["category"] == "road"
    assert doc["photos"] == ["https://fms.example.org/photo/4321.0.jpeg"]
    # located by position only: no household in the roster, so the township's staff dispatch it,
    # and the answer said so
    notice = xml_simple(resp.get_data())["request"][0]["service_notice"]
    assert "镇(街道)工作人员" in notice and "未留电话" in notice
    assert system.drain()
    assert report(system, rid)["handler"]["level"] == "township"
    # the email is never shown: not in the request as read back, in XML or JSON
    for fmt in ("xml", "json"):
        body = web.get(f"{BASE}/requests/{rid}.{fmt}", query_string=fms).get_data(as_text=True)
        assert rid in body and "alex@example.org" not in body


def test_an_address_string_and_a_phone_reach_the_neighbourhood_lead(system, web, fms):
    rid = request_id(send_service_request(web, fms, lat=None, long=None, address_string="韶山村一组21号",
                                          phone="13800000001", email=None))
    assert system.drain()
    [req] = xml_simple(web.get(f"{BASE}/requests/{rid}.xml", query_string=fms).get_data())["request"]
    assert req["agency_responsible"] == "第2邻 邻长 李春生"


def test_a_private_report_uploads_its_photos_in_a_multipart_body(system, web, fms):
    rid = request_id(send_service_request(web, fms, photos=[PNG, PNG + b"\x01"]))
    doc = report(system, rid)
    assert [u["content_type"] for u in doc["uploads"]] == ["image/png", "image/png"]
    assert doc["photos"] == [] and all(u["by"] == "resident" for u in doc["uploads"])
    [req] = xml_simple(web.get(f"{BASE}/requests/{rid}.xml", query_string=fms).get_data())["request"]
    assert req["media_url"].endswith(doc["uploads"][0]["url"])


def test_a_bad_upload_refuses_the_whole_request(system, web, fms):
    service = system.service("intake").api["service"]
    before = service.reports.collection.count({})
    resp = send_service_request(web, fms, photos=[PNG, b"%PDF-1.4 not a photo"])
    assert resp.status_code == 400
    assert process_error(resp) == "400: photo2: 只接受JPEG、PNG或WebP格式的照片\n"
    assert service.reports.collection.count({}) == before


def test_what_fixmystreet_gets_wrong_is_named(web, fms):
    resp = send_service_request(web, fms, lat=None, long=None)
    assert resp.status_code == 400 and process_error(resp).startswith("400: phone: 必填参数")
    resp = send_service_request(web, fms, email="not-an-email")
    assert process_error(resp) == "400: email: 邮箱格式不正确\n"
    resp = send_service_request(web, fms, phone="12345")
    assert process_error(resp) == "400: phone: 手机号或座机号格式不正确\n"


# -- polling updates ---------------------------------------------------------------------------------
def walk_a_case(system, web, fms, clock) -> str:
    """An FMS report at a known address; its 邻长 accepts, then passes it up; the 组长 resolves it."""
    rid = request_id(send_service_request(web, fms, lat=None, long=None, address_string="韶山村一组12号"))
    assert system.drain()
    case_id = case_id_for(report(system, rid)["_id"])
    p = posts(system)
    for path, body, unit in (("accept", {}, "neighbourhood"),
                             ("escalate", {"reason": "beyond_ability"}, "neighbourhood"),
                             ("accept", {}, "group"), ("resolve", {"note": "井盖已补齐"}, "group")):
        clock.advance(minutes=5)
        resp = web.post(f"/api/v1/cases/{case_id}/{path}", json=body, headers=holder(system, p[unit]))
        assert resp.status_code == 200, resp.json
        assert system.drain()
    return rid


def test_fixmystreet_polls_the_steps_of_its_report(system, web, fms, clock):
    rid = walk_a_case(system, web, fms, clock)
    now = clock.now()
    seen: set[str] = set()
    updates = [u for u in poll(web, fms, now - timedelta(hours=2), now, seen) if u["service_request_id"] == rid]
    assert [(u["external_status_code"], u["state"]) for u in updates] == [
        ("assigned", "confirmed"), ("accepted", "in progress"), ("escalated", "investigating"),
        ("accepted", "in progress"), ("resolved", "fixed - council")]
    assert all(u["updated_datetime"].endswith("+08:00") for u in updates)
    assert updates[-1]["description"] == "已办结：井盖已补齐"
    assert "已接单" in updates[1]["description"]
    # the next poll overlaps the last one: nothing new, the update_ids are the same
    clock.advance(minutes=5)
    assert poll(web, fms, clock.now() - timedelta(hours=2), clock.now(), seen) == []
    # a window that starts after the first two steps leaves them out
    later = get_service_request_updates(web, fms, now - timedelta(minutes=12), now)
    codes = [u["external_status_code"] for u in xml_simple(later.get_data())["request_update"]]
    assert codes == ["escalated", "accepted", "resolved"]


def test_the_feed_in_json_matches_the_xml(system, web, fms, clock):
    walk_a_case(system, web, fms, clock)
    start, end = clock.now() - timedelta(hours=2), clock.now()
    as_json = get_service_request_updates(web, fms, start, end, "json")
    assert as_json.content_type == "application/json; charset=utf-8"
    as_xml = xml_simple(get_service_request_updates(web, fms, start, end).get_data())["request_update"]
    assert [(u["update_id"], u["status"]) for u in as_json.get_json()] == [(u["update_id"], u["status"]) for u in as_xml]
    assert set(as_json.get_json()[0]) == {"update_id", "service_request_id", "status", "updated_datetime",
                                          "description", "external_status_code"}


def test_an_empty_window_is_an_empty_list(web, fms, clock):
    resp = get_service_request_updates(web, fms, clock.now() - timedelta(hours=2), clock.now())
    assert xml_simple(resp.get_data()) is None   # <service_request_updates/>: XML::Simple's undef
    assert get_service_request_updates(web, fms, clock.now() - timedelta(hours=2), clock.now(), "json").get_json() == []


def test_updates_stay_behind_the_key_and_inside_the_township(system, web, fms, clock):
    walk_a_case(system, web, fms, clock)
    start, end = w3cdtf(clock.now() - timedelta(hours=2)), w3cdtf(clock.now())
    url = f"{BASE}/servicerequestupdates.xml"
    no_key = web.get(url, query_string={"jurisdiction_id": TOWNSHIP, "start_date": start, "end_date": end})
    assert no_key.status_code == 401 and process_error(no_key).startswith("401: api_key")
    other = token(system, "client", townships=("430382101",))["Authorization"][7:]
    resp = web.get(url, query_string={"jurisdiction_id": TOWNSHIP, "api_key": other})
    assert resp.status_code == 404
    # the other township's own feed is empty
    resp = web.get(url, query_string={"jurisdiction_id": "430382101", "api_key": other})
    assert resp.status_code == 200 and xml_simple(resp.get_data()) is None
    resp = web.get(url, query_string={**fms, "start_date": "yesterday"})
    assert resp.status_code == 400 and process_error(resp).startswith("400: start_date: 时间格式不正确")
    resp = web.get(url, query_string={**fms, "start_date": "2026-01-01T00:00:00Z", "end_date": end})
    assert process_error(resp) == "400: start_date/end_date: 查询区间不能超过90天\n"
    assert web.post(url, data=fms).status_code == 405


def test_no_follow_up_call_is_owed_to_a_reporter_without_a_phone(system, web, fms, clock):
    rid = walk_a_case(system, web, fms, clock)
    doc = report(system, rid)
    assert doc["reporter_phone"] is None and doc["rating_due"] is not None   # unrated, a call would be due
    sweeper = system.service("intake").api["followup_sweeper"]
    sweeper.stop()   # fired by hand, so no background claim is half done when the test looks
    clock.advance(days=4)
    assert sweeper.run_once() == 1
    assert system.drain()
    assert system.service("intake").api["followups"].collection.count({"report_id": doc["_id"]}) == 0
    assert report(system, rid)["rating_due"] is None
