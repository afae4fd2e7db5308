"""The pages' pure parts: times in China time, the townships setting, the resident's and the desks'
forms with their Chinese messages, the CSRF value, and that the wheel carries every page file."""
from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from marshmallow import ValidationError

from services.dispatch.page_forms import EscalateForm, NoteForm
from services.escalation.page_forms import ExtensionForm, ReturnForm
from services.intake.page_desk import check_photos, csrf_for, csrf_ok, parse_townships
from services.intake.page_forms import RatingForm, ReportForm, TrackForm
from services.intake.loop_errors import BadInput
from shared.pages.text import local_iso, local_time

ROOT = Path(__file__).resolve().parents[2]
NONCE = "0123456789abcdef0123456789abcdef"


def test_times_are_shown_in_china_time():
    assert local_time("2026-11-02T01:00:00.000000Z") == "11月2日 09:00"
    assert local_time("2026-12-31T16:30:00+00:00", with_year=True) == "2027年1月1日 00:30"
    assert local_iso("2026-11-02T01:00:00Z") == "2026-11-02T09:00+08:00"
    assert local_time(None) == "" and local_iso("") == ""


def test_the_townships_setting():
    assert parse_townships("430382100=清溪镇, 430382101") == {"430382100": "清溪镇", "430382101": "430382101"}
    assert parse_townships(None) == {} and parse_townships(" , ") == {}


def test_a_report_form_names_each_bad_field_in_chinese():
    with pytest.raises(ValidationError) as err:
        ReportForm().load({"description": "坏", "phone": "123", "address": " ", "lat": "30.1", "submission": "x"})
    messages = {k: v[0] for k, v in err.value.messages.items()}
    assert messages == {"category": "请选择问题类别", "description": "请用几句话说明问题（4到2000个字）",
                        "address": "请填写地址，例如：韶山村一组12号", "phone": "手机号格式不正确，请填写11位手机号",
                        "submission": "页面已过期，请刷新后重新提交"}


def test_a_good_report_form_and_a_half_location():
    form = ReportForm().load({"category": "road", "description": "路面塌了一个坑", "address": "韶山村一组",
                              "phone": "13800000001", "name": "", "lat": "27.9", "lng": "112.5", "urgent": "true",
                              "submission": NONCE, "go": "提交"})
    assert form["urgent"] is True and form["lat"] == 27.9 and "name" not in form and "go" not in form
    with pytest.raises(ValidationError) as err:
        ReportForm().load({"category": "road", "description": "路面塌了一个坑", "address": "韶山村一组",
                           "phone": "13800000001", "lat": "27.9", "submission": NONCE})
    assert err.value.messages == {"lat": ["位置不完整，请重新获取或不填"]}


def test_track_and_rating_forms():
    assert TrackForm().load({"tracking_no": " ab12cd34 ", "phone_last4": "0001"})["tracking_no"] == "ab12cd34"
    with pytest.raises(ValidationError) as err:
        TrackForm().load({"tracking_no": "x", "phone_last4": "12a4"})
    assert set(err.value.messages) == {"tracking_no", "phone_last4"}
    with pytest.raises(ValidationError) as err:
        RatingForm().load({"rating": "很好", "csrf": "c"})
    assert err.value.messages == {"rating": ["请选择评价"]}


def test_photos_are_checked_before_anything_is_stored():
    jpeg = b"\xff\xd8\xff" + b"0" * 100
    check_photos([jpeg] * 9)
    for files, message in (([jpeg] * 10, "最多上传9张照片"), ([b"GIF89a..."], "只能上传照片（JPEG、PNG或WebP格式）"),
                           ([b"\xff\xd8\xff" + b"0" * (5 * 1024 * 1024)], "每张照片不能超过5MB")):
        with pytest.raises(BadInput) as err:
            check_photos(files)
        assert (err.value.field, err.value.message) == ("photos", message)


def test_the_csrf_value_belongs_to_its_token():
    assert csrf_ok("szr1.a", csrf_for("szr1.a"))
    assert not csrf_ok("szr1.b", csrf_for("szr1.a")) and not csrf_ok("szr1.a", None)


def test_the_desks_forms():
    with pytest.raises(ValidationError) as err:
        NoteForm().load({"note": "好", "csrf_token": "t"})
    assert err.value.messages == {"note": ["请写2到500个字"]}
    with pytest.raises(ValidationError) as err:
        EscalateForm().load({"reason": "不想办"})
    assert err.value.messages == {"reason": ["请选择上交原因"]}
    with pytest.raises(ValidationError) as err:
        ExtensionForm().load({"working_days": "abc", "reason": "等鉴定"})
    assert err.value.messages == {"working_days": ["请填写1到60的数字"]}
    with pytest.raises(ValidationError) as err:
        ReturnForm().load({"reason": "不属本局职责", "evidence": "duty-list.pdf"})
    assert err.value.messages == {"evidence": ["请填写以 http:// 或 https:// 开头的链接"]}


def test_the_wheel_carries_every_page_file():
    """Every file the pages read (not Python) is matched by pyproject's package-data."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    page_files = [p for top in ("shared", "services") for p in (ROOT / top).rglob("*")
                  if p.is_file() and p.suffix in (".html", ".css", ".js", ".svg")]
    assert page_files
    for path in page_files:
        rel = path.relative_to(ROOT)
        carried = any(rel.as_posix().startswith(pkg.replace(".", "/") + "/")
                      and fnmatch(rel.relative_to(Path(pkg.replace(".", "/"))).as_posix(), glob)
                      for pkg, globs in data.items() for glob in globs)
        assert carried, f"{rel} is not in the wheel: add it to [tool.setuptools.package-data]"
