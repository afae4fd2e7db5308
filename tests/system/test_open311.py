"""Open311 GeoReport v2 on intake: discovery, services, creating and reading requests, in JSON and XML."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from services.intake.reports import submitted_event
from shared.cli import _load_demo
from shared.clock import parse_iso
from shared.events import make_event

from tests.support.runtime import token

BASE = "/open311/v2"
TOWNSHIP = "430382100"
OTHER_TOWNSHIP = "430521100"
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


@pytest.fixture
def demo(system):
    return _load_demo(system)


def xml_of(resp) -> ET.Element:
    assert resp.content_type == "text/xml; charset=utf-8"
    body = resp.get_data()
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(body)


def json_of(resp):
    assert resp.content_type == "application/json; charset=utf-8"
    return resp.get_json()


def post_request(web, demo, fmt="json", **fields):
    form = {"api_key": demo["client"], "jurisdiction_id": TOWNSHIP, "service_code": "environment",
            "description": "门口路灯坏了一个星期，晚上出行不安全", "address_string": demo["address"],
            "phone": "13973200001"}
    form.update(fields)
    form = {k: v for k, v in form.items() if v is not None}
    return web.post(f"{BASE}/requests.{fmt}", data=form)


def create(web, demo, **fields) -> str:
    resp = post_request(web, demo, **fields)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return json_of(resp)[0]["service_request_id"]


def get_json(web, path, **query):
    return web.get(f"{BASE}/{path}", query_string=query)


def intake(system):
    return system.service("intake").api["service"]


def resolve(system, clock, tracking_no, note):
    """What dispatch tells intake when a lead resolves the case (case.resolved), folded in as intake would."""
    service = intake(system)
    report = service.in_township(TOWNSHIP, tracking_no)
    h = report["handler"]
    payload = {"case_id": report["case_id"], "report_id": report["_id"], "tracking_no": tracking_no,
               "category": report["category"], "tier": "general", "status": "resolved", "note": note,
               "assignee": {"level": h["level"], "unit_id": "unit-1", "unit_name": h["unit_name"],
                            "lead_name": h["name"], "lead_phone_masked": h["phone"]}}
    service.on_case_event(make_event("case.resolved", TOWNSHIP, payload, at=clock.now(),
                                     correlation_id=report["_id"]))


def ids(resp) -> list[str]:
    return [r["service_request_id"] for r in json_of(resp)]


# -- discovery and services -------------------------------------------------------------------------------
def test_discovery_in_json_and_xml(web):
    resp = web.get(f"{BASE}/discovery.json")
    assert resp.status_code == 200
    doc = json_of(resp)
    assert doc["changeset"] == "2026-11-01T00:00:00+08:00"
    assert "三长制" in doc["contact"] and "api_key" in doc["key_service"]
    assert doc["endpoints"] == [{"specification": "http://wiki.open311.org/GeoReport_v2",
                                 "url": "http://localhost/open311/v2", "changeset": "2026-11-01T00:00:00+08:00",
                                 "type": "production", "formats": ["application/json", "text/xml"]}]

    root = xml_of(web.get(f"{BASE}/discovery.xml"))
    assert root.tag == "discovery"
    assert root.findtext("changeset") == "2026-11-01T00:00:00+08:00"
    endpoint = root.find("endpoints/endpoint")
    assert endpoint.findtext("specification") == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint.findtext("url") == "http://localhost/open311/v2"
    assert endpoint.findtext("type") == "production"
    assert [f.text for f in endpoint.findall("formats/format")] == ["application/json", "text/xml"]
    # "<9位代码>" in key_service is escaped in the XML and reads back intact.
    assert "<9位代码>" in root.findtext("key_service")


def test_services_list_one_per_category_in_json_and_xml(web):
    from shared.domain.categories import CATEGORIES

    services = json_of(get_json(web, "services.json", jurisdiction_id=TOWNSHIP))
    assert [s["service_code"] for s in services] == list(CATEGORIES)
    road = next(s for s in services if s["service_code"] == "road")
    assert road == {"service_code": "road", "service_name": "道路交通", "description": "道路破损、桥梁、路灯与交通问题",
                    "metadata": False, "type": "realtime", "keywords": "道路,坑洼,桥梁,路灯,交通", "group": "基础设施"}
    assert all(s["metadata"] is False and s["type"] == "realtime" and s["group"] for s in services)

    root = xml_of(get_json(web, "services.xml", jurisdiction_id=TOWNSHIP))
    assert root.tag == "services"
    rows = root.findall("service")
    assert [r.findtext("service_code") for r in rows] == list(CATEGORIES)
    env = rows[0]
    assert env.findtext("service_name") == "环境卫生"
    assert env.findtext("metadata") == "false"
    assert env.findtext("type") == "realtime"
    assert env.findtext("group") == "人居环境"
    assert "垃圾" in env.findtext("keywords").split(",")


def test_service_definition_is_an_empty_attribute_list_and_unknown_codes_are_404(web):
    assert json_of(get_json(web, "services/water.json", jurisdiction_id=TOWNSHIP)) == {
        "service_code": "water", "attributes": []}
    root = xml_of(get_json(web, "services/water.xml", jurisdiction_id=TOWNSHIP))
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == "water"
    assert root.find("attributes") is not None and list(root.find("attributes")) == []

    resp = get_json(web, "services/graffiti.json", jurisdiction_id=TOWNSHIP)
    assert resp.status_code == 404
    assert json_of(resp) == [{"code": 404, "description": "service_code graffiti 不存在"}]
    resp = get_json(web, "services/graffiti.xml", jurisdiction_id=TOWNSHIP)
    assert resp.status_code == 404
    error = xml_of(resp).find("error")
    assert error.findtext("code") == "404" and "graffiti" in error.findtext("description")


# -- creating and reading -----------------------------------------------------------------------------
def test_form_post_creates_a_report_that_reaches_the_neighbourhood_lead(system, web, demo):
    resp = post_request(web, demo)
    assert resp.status_code == 200
    [created] = json_of(resp)
    tracking_no = created["service_request_id"]
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", tracking_no)
    assert created["account_id"] is None
    assert tracking_no in created["service_notice"] and "邻长" in created["service_notice"]
    report = intake(system).in_township(TOWNSHIP, tracking_no)
    assert report["channel"] == "open311"
    assert report["address"] == demo["address"] and report["reporter_phone"] == "13973200001"

    assert system.drain()
    [view] = json_of(get_json(web, f"requests/{tracking_no}.json", jurisdiction_id=TOWNSHIP, api_key=demo["client"]))
    assert view["service_request_id"] == tracking_no
    assert view["status"] == "open"
    assert view["agency_responsible"] == "第1邻 邻长 周桂香"
    assert view["status_notes"] == "已派单，等待接单：已派给第1邻邻长 周桂香"
    assert view["service_code"] == "environment" and view["service_name"] == "环境卫生"
    assert view["description"] == "门口路灯坏了一个星期，晚上出行不安全"
    assert view["requested_datetime"] == "2026-11-02T09:00:00+08:00"
    assert view["updated_datetime"] == "2026-11-02T09:00:00+08:00"
    assert view["expected_datetime"] == "2026-11-04T09:00:00+08:00"  # general: 2 working days
    assert view["service_notice"] == "承诺于 2026-11-04 09:00（北京时间）前办结，逾期自动上报上一级。"
    # The address is a household's door plate: personal, never returned; nor lat/long/media when absent.
    assert not {"address", "address_id", "zipcode", "lat", "long", "media_url"} & set(view)

    root = xml_of(get_json(web, f"requests/{tracking_no}.xml", jurisdiction_id=TOWNSHIP, api_key=demo["client"]))
    assert root.tag == "service_requests"
    [req] = root.findall("request")
    assert req.findtext("service_request_id") == tracking_no
    assert req.findtext("status") == "open"
    assert req.findtext("agency_responsible") == "第1邻 邻长 周桂香"
    assert req.findtext("expected_datetime") == "2026-11-04T09:00:00+08:00"
    assert req.find("address") is None


def test_phone_alone_locates_the_household_and_fields_map_onto_the_report(system, web, demo):
    # 13973200003 is 李长庚's registered phone, in 韶山村一组第2邻 (邻长 李春生).
    tracking_no = create(web, demo, address_string=None, phone="139 7320 0003", first_name="长庚", last_name="李",
                         email="li@example.com", lat="27.915", long="112.527",
                         media_url="https://img.example.com/lamp.jpg", service_code="power",
                         description="家里这两天总是跳闸，电线老化")
    report = intake(system).in_township(TOWNSHIP, tracking_no.lower())
    assert report["reporter_phone"] == "13973200003"
    assert report["reporter_name"] == "李长庚"
    assert report["location"] == {"lat": 27.915, "lng": 112.527}
    assert report["photos"] == ["https://img.example.com/lamp.jpg"]
    assert report["category"] == "power" and report["address"] is None
    # The email is kept with the report like a phone: never in the report.submitted event nor a view.
    assert report["reporter_email"] == "li@example.com"
    assert "li@example.com" not in str(submitted_event(report, parse_iso(report["submitted_at"])))

    assert system.drain()
    [view] = json_of(get_json(web, f"requests/{tracking_no}.json", jurisdiction_id=TOWNSHIP, api_key=demo["client"]))
    assert view["agency_responsible"] == "第2邻 邻长 李春生"
    assert view["lat"] == 27.915 and view["long"] == 112.527
    assert view["media_url"] == "https://img.example.com/lamp.jpg"
    assert view["service_name"] == "供电"


def test_json_body_post_answers_xml_and_western_names_keep_their_order(system, web, demo):
    resp = web.post(f"{BASE}/requests.xml", json={
        "api_key": demo["staff"], "jurisdiction_id": TOWNSHIP, "service_code": "water",
        "description": "自来水浑浊，已经三天了", "phone": "13973200002", "first_name": "Anna", "last_name": "Chen",
        "media_url": ["https://img.example.com/1.jpg", "https://img.example.com/2.jpg"]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    root = xml_of(resp)
    assert root.tag == "service_requests"
    req = root.find("request")
    tracking_no = req.findtext("service_request_id")
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", tracking_no)
    assert req.find("account_id") is not None and req.findtext("account_id") == ""
    assert tracking_no in req.findtext("service_notice")
    report = intake(system).in_township(TOWNSHIP, tracking_no)
    assert report["reporter_name"] == "Anna Chen"
    assert report["photos"] == ["https://img.example.com/1.jpg", "https://img.example.com/2.jpg"]
    assert report["channel"] == "open311"


def test_list_filters_by_status_service_code_dates_and_ids(system, web, clock, demo):
    a = create(web, demo, service_code="environment")                       # 2026-11-02 09:00 (+08)
    clock.advance(days=3)
    b = create(web, demo, service_code="road", description="村口的路塌了一个坑，车子过不去")   # 2026-11-05
    clock.advance(days=2)
    c = create(web, demo, service_code="water", description="水管爆了，整条街停水")          # 2026-11-07
    assert system.drain()
    resolve(system, clock, c, "水管已修好，恢复供水")

    key = {"jurisdiction_id": TOWNSHIP, "api_key": demo["client"]}
    assert ids(get_json(web, "requests.json", **key)) == [c, b, a]  # newest first, last 90 days
    assert ids(get_json(web, "requests.json", status="open", **key)) == [b, a]
    assert ids(get_json(web, "requests.json", status="closed", **key)) == [c]
    assert ids(get_json(web, "requests.json", status="open,closed", **key)) == [c, b, a]
    assert ids(get_json(web, "requests.json", service_code="road", **key)) == [b]
    assert ids(get_json(web, "requests.json", service_code="environment,water", **key)) == [c, a]
    assert ids(get_json(web, "requests.json", service_code="water", status="open", **key)) == []
    assert ids(get_json(web, "requests.json", start_date="2026-11-04", end_date="2026-11-06", **key)) == [b]
    assert ids(get_json(web, "requests.json", start_date="2026-11-05T09:00:00+08:00", **key)) == [c, b]
    assert ids(get_json(web, "requests.json", end_date="2026-11-05T00:59:59Z", **key)) == [a]
    # An unencoded "+08:00" arrives as " 08:00": still understood.
    resp = web.get(f"{BASE}/requests.json?jurisdiction_id={TOWNSHIP}&api_key={demo['client']}"
                   f"&start_date=2026-11-05T09:00:01+08:00")
    assert ids(resp) == [c]
    # service_request_id overrides the other filters.
    assert ids(get_json(web, "requests.json", service_request_id=f"{a},{c.lower()}", status="open", **key)) == [c, a]

    [closed] = json_of(get_json(web, "requests.json", status="closed", **key))
    assert closed["status"] == "closed"
    assert closed["status_notes"] == "已办结：水管已修好，恢复供水"
    assert closed["service_notice"] == "已办结，感谢您的反映。"
    assert closed["updated_datetime"] == "2026-11-07T09:00:00+08:00"

    root = xml_of(get_json(web, "requests.xml", status="open", **key))
    assert [r.findtext("service_request_id") for r in root.findall("request")] == [b, a]
    assert [r.findtext("status") for r in root.findall("request")] == ["open", "open"]
    assert root.find("request").findtext("service_name") == "道路交通"

    # Without dates the window is the last 90 days.
    clock.advance(days=100)
    assert ids(get_json(web, "requests.json", **key)) == []
    assert ids(get_json(web, "requests.json", start_date="2026-11-01", **key)) == [c, b, a]


# -- errors ---------------------------------------------------------------------------------------------
def test_errors_answer_in_the_spec_format_in_json_and_xml(web, demo):
    def err(resp, status):
        assert resp.status_code == status, resp.get_data(as_text=True)
        body = json_of(resp)
        assert isinstance(body, list) and all(set(e) == {"code", "description"} for e in body)
        assert all(e["code"] == status for e in body)
        return [e["description"] for e in body]

    def xerr(resp, status):
        assert resp.status_code == status, resp.get_data(as_text=True)
        root = xml_of(resp)
        assert root.tag == "errors"
        return [(e.findtext("code"), e.findtext("description")) for e in root.findall("error")]

    # missing / malformed jurisdiction_id
    assert err(get_json(web, "services.json"), 400) == ["jurisdiction_id: 必填参数（9位镇(街道)行政区划代码）"]
    assert xerr(get_json(web, "services.xml"), 400) == [("400", "jurisdiction_id: 必填参数（9位镇(街道)行政区划代码）")]
    assert err(get_json(web, "requests.json", api_key=demo["client"]), 400)[0].startswith("jurisdiction_id")
    assert err(get_json(web, "requests.json", jurisdiction_id="4303821", api_key=demo["client"]), 400) == [
        "jurisdiction_id: 必须是9位行政区划代码"]
    assert xerr(post_request(web, demo, "xml", jurisdiction_id=None), 400)[0][1].startswith("jurisdiction_id")

    # unknown service_code
    assert err(post_request(web, demo, service_code="graffiti"), 400) == [
        "service_code: graffiti 不存在，可选值见 services.json"]
    assert xerr(post_request(web, demo, "xml", service_code="graffiti"), 400)[0][0] == "400"
    assert "graffiti" in err(get_json(web, "requests.json", service_code="graffiti", jurisdiction_id=TOWNSHIP,
                                      api_key=demo["client"]), 400)[0]

    # api_key: missing 401, bad 403 (also as a bearer header), a department's 403
    assert err(post_request(web, demo, api_key=None), 401)[0].startswith("api_key")
    assert err(post_request(web, demo, api_key="sz1.forged"), 403) == ["api_key 无效"]
    assert xerr(get_json(web, "requests.xml", jurisdiction_id=TOWNSHIP, api_key="nope"), 403) == [("403", "api_key 无效")]
    resp = web.get(f"{BASE}/requests.json", query_string={"jurisdiction_id": TOWNSHIP},
                   headers={"Authorization": "Bearer sz1.forged"})
    assert err(resp, 403) == ["api_key 无效"]
    assert err(get_json(web, "requests.json", jurisdiction_id=TOWNSHIP), 401)[0].startswith("api_key")
    department_key = token(web.application.extensions["sanzhang.runtime"], "department")["Authorization"][7:]
    assert "department" in err(get_json(web, "requests.json", jurisdiction_id=TOWNSHIP, api_key=department_key), 403)[0]

    # the phone: required unless lat/long or an address locate the problem; validated as in /api/v1/reports
    assert err(post_request(web, demo, phone=None, address_string=None), 400) == [
        "phone: 必填参数（报事人电话）；不留电话时须提供 lat/long 或 address_string 以确定问题位置"]
    assert err(post_request(web, demo, phone="12345"), 400) == ["phone: 手机号或座机号格式不正确"]
    assert xerr(post_request(web, demo, "xml", phone="12345"), 400) == [("400", "phone: 手机号或座机号格式不正确")]
    several = err(post_request(web, demo, phone=None, address_string=None, description=None, service_code=None), 400)
    assert [d.split(":")[0] for d in several] == ["service_code", "phone", "description"]
    assert err(post_request(web, demo, lat="27.9"), 400) == ["lat/long: 须同时提供经度和纬度"]
    assert err(post_request(web, demo, lat="95", long="112.5"), 400)[0].startswith("lat: ")
    assert err(post_request(web, demo, media_url="not a url"), 400)[0].startswith("media_url: ")
    assert err(post_request(web, demo, description="太吵"), 400)[0].startswith("description: ")

    # unknown request ids
    key = {"jurisdiction_id": TOWNSHIP, "api_key": demo["client"]}
    assert err(get_json(web, "requests/ZZZZ9999.json", **key), 404) == ["service_request_id ZZZZ9999 未找到"]
    assert xerr(get_json(web, "requests/ZZZZ9999.xml", **key), 404) == [("404", "service_request_id ZZZZ9999 未找到")]
    assert xerr(get_json(web, "requests/bad%20id!.xml", **key), 404)[0][0] == "404"

    # list parameters
    assert err(get_json(web, "requests.json", status="pending", **key), 400) == ["status: pending 不正确，可选 open、closed"]
    assert err(get_json(web, "requests.json", start_date="yesterday", **key), 400)[0].startswith("start_date")
    assert err(get_json(web, "requests.json", start_date="2026-01-01", end_date="2026-11-01", **key), 400) == [
        "start_date/end_date: 查询区间不能超过90天"]
    assert err(get_json(web, "requests.json", start_date="2026-11-05", end_date="2026-11-01", **key), 400) == [
        "end_date: 不能早于 start_date"]

    # routes, formats and methods outside the spec still answer in its format, never the generic shape
    assert err(web.get(f"{BASE}/services.csv"), 404) == ["不支持该格式：仅支持 .json 与 .xml"]
    assert err(web.get(f"{BASE}/tokens/abc.json"), 404)[0].startswith("未找到该资源")
    assert xerr(web.delete(f"{BASE}/requests.xml"), 405) == [("405", "不支持 DELETE 方法")]
    assert err(web.post(f"{BASE}/requests.json", data="[1,", content_type="application/json"), 400) == [
        "请求体不是有效的 JSON 对象"]


def test_another_townships_key_gets_404(system, web, demo):
    tracking_no = create(web, demo)
    assert system.drain()
    other = token(system, "client", townships=(OTHER_TOWNSHIP,))["Authorization"][7:]

    resp = get_json(web, f"requests/{tracking_no}.json", jurisdiction_id=TOWNSHIP, api_key=other)
    assert resp.status_code == 404 and json_of(resp) == [{"code": 404, "description": f"jurisdiction_id {TOWNSHIP} 未找到"}]
    # Naming its own township does not reach the report either.
    resp = get_json(web, f"requests/{tracking_no}.json", jurisdiction_id=OTHER_TOWNSHIP, api_key=other)
    assert resp.status_code == 404 and json_of(resp)[0]["description"] == f"service_request_id {tracking_no} 未找到"
    resp = get_json(web, "requests.xml", jurisdiction_id=TOWNSHIP, api_key=other, service_request_id=tracking_no)
    assert resp.status_code == 404 and xml_of(resp).findtext("error/code") == "404"
    assert json_of(get_json(web, "requests.json", jurisdiction_id=OTHER_TOWNSHIP, api_key=other,
                            service_request_id=tracking_no)) == []
    resp = post_request(web, demo, api_key=other)
    assert resp.status_code == 404 and json_of(resp)[0]["code"] == 404
    assert intake(system).search(OTHER_TOWNSHIP, since="2000", until="2100") == []

    # The township's own lead and the operator see it.
    lead = get_json(web, f"requests/{tracking_no}.json", jurisdiction_id=TOWNSHIP, api_key=demo["lead"])
    assert lead.status_code == 200 and json_of(lead)[0]["service_request_id"] == tracking_no
    from tests.support.runtime import ADMIN
    admin = get_json(web, f"requests/{tracking_no}.json", jurisdiction_id=TOWNSHIP, api_key=ADMIN)
    assert admin.status_code == 200 and json_of(admin)[0]["agency_responsible"] == "第1邻 邻长 周桂香"


def test_no_full_phone_number_in_any_response(system, web, demo):
    bodies = []
    first = post_request(web, demo, description="路灯坏了，有事请打我电话 13973200001 或 0731-5568123")
    second = post_request(web, demo, "xml", phone="13973200003", address_string=None)
    bodies += [first.get_data(as_text=True), second.get_data(as_text=True)]
    assert first.status_code == 200 and second.status_code == 200
    tracking_no = first.get_json()[0]["service_request_id"]
    assert system.drain()
    key = {"jurisdiction_id": TOWNSHIP, "api_key": demo["client"]}
    for fmt in ("json", "xml"):
        for path in (f"discovery.{fmt}", f"services.{fmt}", f"requests.{fmt}", f"requests/{tracking_no}.{fmt}"):
            resp = get_json(web, path, **key)
            assert resp.status_code == 200
            bodies.append(resp.get_data(as_text=True))
    text = "\n".join(bodies)
    assert MOBILE.search(text) is None
    assert "13973200001" not in text and "13973200003" not in text and "5568123" not in text
    # Leads' phones (1387310xxxx in the demo roster) are not shown either.
    assert "1387310" not in text
    [view] = json_of(get_json(web, f"requests/{tracking_no}.json", **key))
    assert view["description"] == "路灯坏了，有事请打我电话 139****0001 或 0731-****8123"


def test_openapi_documents_the_open311_routes(web):
    spec = web.get("/openapi.json").get_json()
    paths = spec["paths"]
    assert set(p for p in paths if p.startswith("/open311/")) == {
        "/open311/v2/discovery.{fmt}", "/open311/v2/services.{fmt}", "/open311/v2/services/{service_code}.{fmt}",
        "/open311/v2/requests.{fmt}", "/open311/v2/requests/{service_request_id}.{fmt}",
        "/open311/v2/servicerequestupdates.{fmt}"}
    assert set(paths["/open311/v2/requests.{fmt}"]) >= {"get", "post"}
    fmt = next(p for p in paths["/open311/v2/discovery.{fmt}"]["parameters"] if p["name"] == "fmt")
    assert fmt["schema"]["enum"] == ["json", "xml"]
    listing = paths["/open311/v2/requests.{fmt}"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"jurisdiction_id", "api_key", "service_request_id",
                                                           "service_code", "start_date", "end_date", "status"}
    assert paths["/open311/v2/discovery.{fmt}"]["get"]["security"] == []
