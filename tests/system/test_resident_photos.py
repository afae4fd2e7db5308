"""Photos: the blob port's contract on SQLite and on GridFS (over the wire, SecantusDB), uploads checked by size and by
magic bytes (never by file name), served only within the report's township, and Open311's media_url."""
from __future__ import annotations

import io
import os
import struct
import uuid
import zlib

import pytest

from services.intake.loop_errors import Conflict
from services.intake.photos import MAX_BYTES, photo_id, sniff
from services.intake.residents import Caller
from shared.domain.ids import case_id_for
from shared.cli import _load_demo
from shared.storage import DuplicateKey
from shared.storage.blobs import GridFSBlobs, SQLiteBlobs, blobs_for
from shared.storage.mongo import MongoStore
from shared.storage.sqlite import SQLiteStore
from tests.support.runtime import token
from tests.support.dispatch import case, holder, posts

TOWNSHIP = "430382100"
OTHER = "430382101"


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg(size: int = 2048) -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + os.urandom(size) + b"\xff\xd9"


WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + b"\x00" * 24


# -- the blob port, one contract for both adapters --------------------------------------------------------
@pytest.fixture(params=["sqlite", "mongodb"])
def blobs(request, tmp_path):
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "blobs.db")
        yield blobs_for(store, "photos")
        store.close()
    else:
        # SecantusDB over the wire (or a real MongoDB via SANZHANG_MONGO_URL): pymongo's own gridfs.
        store = MongoStore.from_url(request.getfixturevalue("mongo_url"), "blobs_" + uuid.uuid4().hex[:8])
        yield blobs_for(store, "photos")
        store.client.drop_database(store.db.name)
        store.close()


def test_blob_contract(blobs):
    assert isinstance(blobs, (SQLiteBlobs, GridFSBlobs))
    big = os.urandom(MAX_BYTES)            # 5 MB: twenty GridFS chunks
    blobs.put("p1", big, {"township": TOWNSHIP, "content_type": "image/jpeg", "size": len(big)})
    got = blobs.get("p1")
    assert got.data == big and got.meta == {"township": TOWNSHIP, "content_type": "image/jpeg", "size": len(big)}
    with pytest.raises(DuplicateKey):
        blobs.put("p1", b"other", {})
    assert blobs.get("p1").data == big     # the first write stands
    assert blobs.get("missing") is None
    blobs.put("p2", b"", {"township": OTHER})
    assert blobs.get("p2").data == b""
    assert blobs.delete("p1") is True and blobs.get("p1") is None
    assert blobs.delete("p1") is False


# -- uploads through the API -----------------------------------------------------------------------------
@pytest.fixture
def demo(system):
    system.service("dispatch").api["sweeper"].stop()
    return _load_demo(system)


@pytest.fixture
def report(system, web, demo):
    resp = web.post("/api/v1/reports", json={
        "township": TOWNSHIP, "category": "environment", "address": "韶山村一组12号", "channel": "mini_program",
        "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": "13973200001"},
        headers=token(system, "client"))
    assert resp.status_code == 201
    assert system.drain()
    return resp.json


def upload(web, ref, data, headers, name="photo.jpg", **form):
    return web.post(f"/api/v1/reports/{ref}/photos", data={"file": (io.BytesIO(data), name), **form},
                    headers=headers, content_type="multipart/form-data")


def test_a_resident_attaches_a_photo_and_only_the_township_sees_it(system, web, report):
    client = token(system, "client")
    picture = jpeg()
    assert upload(web, report["id"], picture, client, phone_last4="9999").status_code == 404
    assert upload(web, report["id"], picture, token(system, "client", townships=(OTHER,)),
                  phone_last4="0001").status_code == 404
    assert upload(web, report["id"], picture, {}).status_code == 401
    resp = upload(web, report["tracking_no"], picture, client, phone_last4="0001")
    assert resp.status_code == 201, resp.json
    photo = resp.json["photo"]
    assert photo["content_type"] == "image/jpeg" and photo["size"] == len(picture)
    assert photo["url"] == f"/api/v1/photos/{photo['id']}"
    # The same picture sent again (a retry after a lost response) is the same photo.
    again = upload(web, report["id"], picture, {"Authorization": f"Bearer {report['resident_token']}"})
    assert again.status_code == 201 and again.json["photo"]["id"] == photo["id"] and len(again.json["photos"]) == 1

    p = posts(system)
    for who in (token(system, "staff"), holder(system, p["neighbourhood"]), client,
                {"Authorization": f"Bearer {report['resident_token']}"}):
        got = web.get(photo["url"], headers=who)
        assert got.status_code == 200 and got.data == picture and got.content_type == "image/jpeg"
        assert got.headers["X-Content-Type-Options"] == "nosniff" and "private" in got.headers["Cache-Control"]
    # A lead sees a report's photos while their post holds it, as dispatch shows them only those cases.
    for not_holding in (holder(system, p["group"]), token(system, "lead", unit_id="any-post")):
        assert web.get(photo["url"], headers=not_holding).status_code == 404
    assert web.get(f"{photo['url']}?api_key={token(system, 'client')['Authorization'][7:]}").status_code == 200
    for stranger in (token(system, "staff", townships=(OTHER,)), token(system, "client", townships=(OTHER,))):
        assert web.get(photo["url"], headers=stranger).status_code == 404
    assert web.get(photo["url"]).status_code == 401
    assert web.get("/api/v1/photos/nope", headers=token(system, "staff")).status_code == 404
    other = web.post("/api/v1/reports", json={
        "township": TOWNSHIP, "category": "water", "address": "韶山村一组14号", "channel": "mini_program",
        "description": "自来水浑浊，已经三天了", "reporter_phone": "13973200002"}, headers=client).json
    assert web.get(photo["url"], headers={"Authorization": f"Bearer {other['resident_token']}"}).status_code == 404
    view = web.get(f"/api/v1/reports/{report['id']}", headers=client).json
    assert view["photos"] == [photo["url"]]


def test_upload_limits(system, web, report):
    client = token(system, "client")
    ok = {"phone_last4": "0001"}
    too_big = jpeg(MAX_BYTES)                      # a valid JPEG header, just over 5 MB
    resp = upload(web, report["id"], too_big, client, **ok)
    assert resp.status_code == 413 and resp.is_json
    huge = upload(web, report["id"], jpeg(MAX_BYTES + 2 * 1024 * 1024), client, **ok)
    assert huge.status_code == 413 and huge.is_json
    gif = upload(web, report["id"], b"GIF89a" + b"\x00" * 100, client, name="lamp.jpg", **ok)
    assert gif.status_code == 415 and "JPEG" in gif.json["message"]
    script = upload(web, report["id"], b"<html><script>alert(1)</script>", client, name="lamp.png", **ok)
    assert script.status_code == 415
    assert upload(web, report["id"], b"", client, **ok).status_code == 422
    no_file = web.post(f"/api/v1/reports/{report['id']}/photos", data=ok, headers=client,
                       content_type="multipart/form-data")
    assert no_file.status_code == 422
    assert upload(web, report["id"], png(), client, phone_last4="12ab").status_code == 422
    assert upload(web, report["id"], png(), client, note="x", **ok).status_code == 422
    # A PNG named .txt is a PNG: the bytes decide.
    named_wrong = upload(web, report["id"], png(), client, name="notes.txt", **ok)
    assert named_wrong.status_code == 201 and named_wrong.json["photo"]["content_type"] == "image/png"
    assert upload(web, report["id"], WEBP, client, **ok).json["photo"]["content_type"] == "image/webp"
    for i in range(7):
        assert upload(web, report["id"], png(i + 3, 1), client, **ok).status_code == 201
    tenth = upload(web, report["id"], png(20, 1), client, **ok)
    assert tenth.status_code == 409 and "9" in tenth.json["message"]


def test_leads_attach_photos_to_the_cases_they_hold(system, web, report):
    p = posts(system)
    holding = holder(system, p["neighbourhood"])
    resp = upload(web, report["id"], png(), holding, name="after.png")
    assert resp.status_code == 201 and resp.json["photo"]["content_type"] == "image/png"
    not_holding = holder(system, p["group"])
    assert upload(web, report["id"], jpeg(), not_holding).status_code == 403
    assert upload(web, report["id"], jpeg(), token(system, "lead", townships=(OTHER,), unit_id="x")).status_code == 404
    assert upload(web, report["id"], jpeg(), token(system, "staff")).status_code == 201


def test_open311_media_url_points_at_the_uploaded_photo(system, web, report, demo):
    upload(web, report["id"], jpeg(), token(system, "client"), phone_last4="0001")
    resp = web.get(f"/open311/v2/requests/{report['tracking_no']}.json",
                   query_string={"jurisdiction_id": TOWNSHIP, "api_key": demo["client"]})
    [item] = resp.get_json()
    assert item["media_url"].startswith("http://localhost/api/v1/photos/")
    path = item["media_url"].removeprefix("http://localhost")
    assert web.get(path, query_string={"api_key": demo["client"]}).status_code == 200
    assert web.get(path).status_code == 401


def test_a_set_of_photos_is_kept_whole_or_not_at_all(system, web, report):
    """Several photos sent together (the 办结 page, a resident's report page, Open311) are attached by
    one change of the report: over the limit none is kept — also when another upload took the last
    places between the check and the write — and each is announced once."""
    loop = system.service("intake").api["loop"]
    reports = system.service("intake").api["reports"]
    resident = Caller("resident", township=TOWNSHIP, report_id=report["id"])
    _, first = loop.add_photos(report["id"], resident, None, [png(i + 3, 1) for i in range(7)])
    assert len(first) == 7
    with pytest.raises(Conflict, match="9"):
        loop.add_photos(report["id"], resident, None, [png(30, 1), png(31, 1), png(32, 1)])
    assert len(reports.get(report["id"])["uploads"]) == 7

    # The race: the report is read with 7, another upload adds two, then this set of two is written.
    real_find = loop.resident_report

    def read_then_filled(*args, **kw):
        seen = real_find(*args, **kw)
        loop.resident_report = real_find   # once: the other upload reads as usual
        loop.add_photos(report["id"], resident, None, [png(40, 1), png(41, 1)])
        return seen
    loop.resident_report = read_then_filled
    try:
        with pytest.raises(Conflict, match="9"):
            loop.add_photos(report["id"], resident, None, [png(50, 1), png(51, 1)])
    finally:
        loop.resident_report = real_find
    stored = reports.get(report["id"])["uploads"]
    assert len(stored) == 9                                                  # the racing pair's, none of this one
    assert {photo_id(report["id"], png(50, 1)), photo_id(report["id"], png(51, 1))}.isdisjoint(u["id"] for u in stored)
    # Sent again with one already there: answered with the kept one, nothing doubled.
    _, again = loop.add_photos(report["id"], resident, None, [png(3, 1), png(3, 1)])
    assert [u["id"] for u in again] == [first[0]["id"]] * 2 and len(reports.get(report["id"])["uploads"]) == 9
    assert system.drain()
    photos = case(system, case_id_for(report["id"]))["photos"]
    assert sorted(p["url"] for p in photos) == sorted(u["url"] for u in stored)   # each announced once
