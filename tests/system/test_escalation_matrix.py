"""The responsibility matrix: spreadsheet import (XLSX, CSV in UTF-8 and GBK), validation that refuses
a bad file whole with row numbers, the row API, and who may read or change a city's matrix."""
from __future__ import annotations

import io

import openpyxl
import pytest

from tests.support.runtime import ADMIN_HEADERS, token
from tests.support.escalation import CITY, FOREIGN, MATRIX_CSV, NEIGHBOUR, TOWNSHIP, dept_id, setup_city


def xlsx(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def full_rows() -> list[list]:
    rows = [["类别", "镇(街道)代码", "牵头部门", "配合部门"]]
    rows.append(["住房物业", None, "韶山市住房和城乡建设局", "中国电信韶山分公司，韶山市民政局"])
    rows.append(["road", 430382101, "韶山市城市管理和综合执法局", None])  # a code typed as a number
    for code in ("road", "environment", "water", "power", "dispute", "hazard", "policy", "social", "other"):
        rows.append([code, None, "韶山市城市管理和综合执法局", None])
    return rows


def import_file(web, data: bytes, filename: str, headers=ADMIN_HEADERS):
    return web.post(f"/api/v1/cities/{CITY}/matrix/import?filename={filename}", data=data, headers=headers)


def test_xlsx_import_replaces_the_matrix(system, web):
    setup_city(web, matrix=False)
    resp = import_file(web, xlsx(full_rows()), "责任清单.xlsx")
    assert resp.status_code == 200, resp.json
    rows = resp.json["rows"]
    assert len(rows) == 11 and resp.json["missing"] == []
    housing = next(r for r in rows if r["category"] == "housing")
    assert housing["lead"] == dept_id("zjj") and housing["co"] == [dept_id("dx"), dept_id("mzj")]
    assert housing["co_names"] == ["中国电信韶山分公司", "韶山市民政局"]
    assert any(r["category"] == "road" and r["township"] == NEIGHBOUR for r in rows)
    # A second file is the whole truth: rows it leaves out are gone.
    resp = import_file(web, MATRIX_CSV.encode("utf-8"), "m.csv")
    assert resp.status_code == 200
    road = [r for r in resp.json["rows"] if r["category"] == "road"]
    assert {(r["township"], r["lead"]) for r in road} == {(None, dept_id("jtj")), (NEIGHBOUR, dept_id("cg"))}


def test_gbk_csv_from_excel_is_read(system, web):
    setup_city(web, matrix=False)
    resp = import_file(web, MATRIX_CSV.encode("gbk"), "matrix.csv")
    assert resp.status_code == 200, resp.json
    assert len(resp.json["rows"]) == 11


def test_multipart_upload(system, web):
    setup_city(web, matrix=False)
    resp = web.post(f"/api/v1/cities/{CITY}/matrix/import", headers=ADMIN_HEADERS,
                    data={"file": (io.BytesIO(xlsx(full_rows())), "清单.xlsx")}, content_type="multipart/form-data")
    assert resp.status_code == 200, resp.json


def test_a_bad_file_is_refused_whole_with_row_numbers(system, web):
    setup_city(web)
    before = web.get(f"/api/v1/cities/{CITY}/matrix", headers=ADMIN_HEADERS).json["rows"]
    rows = full_rows()
    rows[1][3] = "中国电信韶山分公司、韶山市不存在局"          # row 2: unknown co-handling department
    rows[2][2] = "韶山市火星局"                                  # row 3: unknown lead
    rows.append(["独角兽", None, "韶山市民政局", None])          # row 13: unknown category
    rows.append(["water", "430521100", "韶山市民政局", None])    # row 14: another city's township
    rows.append(["water", None, "韶山市民政局", None])           # row 15: duplicate of row 6
    rows.append(["other", "4303", "韶山市民政局", "韶山市民政局"])  # row 16: bad code, lead also co
    resp = import_file(web, xlsx(rows), "bad.xlsx")
    assert resp.status_code == 422
    errors = resp.json["errors"]["file"]
    by_row = {}
    for e in errors:
        by_row.setdefault(e["row"], []).append(e)
    assert "韶山市不存在局" in by_row[2][0]["message"] and by_row[2][0]["column"] == "配合部门"
    assert "韶山市火星局" in by_row[3][0]["message"] and by_row[3][0]["column"] == "牵头部门"
    assert "独角兽" in by_row[13][0]["message"]
    assert "不属于本市" in by_row[14][0]["message"]
    assert "第6行" in by_row[15][0]["message"]
    assert {e["column"] for e in by_row[16]} == {"镇(街道)代码", "配合部门"}
    assert [e["row"] for e in errors] == sorted(e["row"] for e in errors)
    # Nothing of it was stored.
    assert web.get(f"/api/v1/cities/{CITY}/matrix", headers=ADMIN_HEADERS).json["rows"] == before


def test_missing_categories_are_named(system, web):
    setup_city(web, matrix=False)
    rows = [r for r in full_rows() if r[0] not in ("policy", "other")]
    rows = [r for r in rows if not (r[0] == "road" and r[1] is None)]   # road: only one township's row
    resp = import_file(web, xlsx(rows), "partial.xlsx")
    assert resp.status_code == 422
    (error,) = resp.json["errors"]["file"]
    assert error["row"] is None
    for name in ("道路交通(road)", "政策咨询(policy)", "其他(other)"):
        assert name in error["message"]


@pytest.mark.parametrize("data,filename,text", [
    (b"", "m.csv", "缺少"),
    (b"\xd0\xcf\x11\xe0" + b"\x00" * 100, "m.xls", ".xls"),
    (b"PK\x03\x04broken", "m.xlsx", "无法读取"),
    ("类别,牵头\nroad,x\n".encode(), "m.csv", "牵头部门"),
    ("类别,牵头部门,说明书\n".encode(), "m.csv", "说明书"),
])
def test_unreadable_or_malformed_files(system, web, data, filename, text):
    setup_city(web, matrix=False)
    resp = import_file(web, data, filename)
    assert resp.status_code in (400, 422)
    assert text in str(resp.json)


def test_rows_through_the_api(system, web):
    setup_city(web)
    resp = web.put(f"/api/v1/cities/{CITY}/matrix/rows", headers=ADMIN_HEADERS,
                   json={"category": "water", "township": TOWNSHIP, "lead": "韶山市自然资源局", "co": [dept_id("cg")]})
    assert resp.status_code == 200, resp.json
    row = next(r for r in resp.json["rows"] if r["category"] == "water" and r["township"] == TOWNSHIP)
    assert row["lead"] == dept_id("zrzy") and row["co"] == [dept_id("cg")]
    bad = web.put(f"/api/v1/cities/{CITY}/matrix/rows", headers=ADMIN_HEADERS,
                  json={"category": "water", "lead": "韶山市火星局"})
    assert bad.status_code == 422 and "lead" in bad.json["errors"]["json"]
    unknown = web.put(f"/api/v1/cities/{CITY}/matrix/rows", headers=ADMIN_HEADERS,
                      json={"category": "water", "lead": dept_id("cg"), "priority": 1})
    assert unknown.status_code == 422 and "priority" in unknown.json["errors"]["json"]
    resp = web.delete(f"/api/v1/cities/{CITY}/matrix/rows?category=other", headers=ADMIN_HEADERS)
    assert resp.status_code == 200
    assert resp.json["missing"] == [{"category": "other", "name": "其他"}]
    assert web.delete(f"/api/v1/cities/{CITY}/matrix/rows?category=other",
                      headers=ADMIN_HEADERS).status_code == 404


def test_a_deactivated_department_is_unknown_to_the_matrix(system, web):
    setup_city(web)
    resp = web.patch(f"/api/v1/departments/{dept_id('mzj')}", json={"active": False}, headers=ADMIN_HEADERS)
    assert resp.status_code == 200 and resp.json["active"] is False
    resp = import_file(web, MATRIX_CSV.encode(), "m.csv")
    assert resp.status_code == 422 and "韶山市民政局" in str(resp.json["errors"])


def test_who_may_read_and_change_a_citys_matrix(system, web):
    setup_city(web)
    township_staff = token(system, "staff", townships=(TOWNSHIP,))
    city_staff = token(system, "staff", townships=(TOWNSHIP, NEIGHBOUR), scopes=("city",))
    other_city = token(system, "staff", townships=(FOREIGN,), scopes=("city",))
    lead = token(system, "lead", townships=(TOWNSHIP,), unit_id="u-1")
    row = {"category": "water", "lead": dept_id("zrzy")}
    assert web.get(f"/api/v1/cities/{CITY}/matrix", headers=township_staff).status_code == 200
    assert web.get(f"/api/v1/cities/{CITY}/departments", headers=township_staff).status_code == 200
    assert web.put(f"/api/v1/cities/{CITY}/matrix/rows", json=row, headers=township_staff).status_code == 403
    assert web.put(f"/api/v1/cities/{CITY}/matrix/rows", json=row, headers=city_staff).status_code == 200
    assert web.get(f"/api/v1/cities/{CITY}/matrix", headers=other_city).status_code == 404
    assert web.put(f"/api/v1/cities/{CITY}/matrix/rows", json=row, headers=other_city).status_code == 404
    assert web.get(f"/api/v1/departments/{dept_id('zjj')}", headers=other_city).status_code == 404
    assert web.get(f"/api/v1/cities/{CITY}/matrix", headers=lead).status_code == 403
    assert web.get(f"/api/v1/cities/{CITY}/matrix").status_code == 401
    # City staff run their departments too.
    resp = web.post(f"/api/v1/cities/{CITY}/departments", json={"name": "韶山市水利局"}, headers=city_staff)
    assert resp.status_code == 201 and resp.json["id"].startswith(CITY + "-")
    dup = web.post(f"/api/v1/cities/{CITY}/departments", json={"name": "韶山市 水利局"}, headers=city_staff)
    assert dup.status_code == 409 and dup.json["error_code"] == "duplicate_name"


@pytest.mark.parametrize("township,lead", [(TOWNSHIP, "jtj"), (NEIGHBOUR, "cg")])
def test_a_townships_own_row_beats_the_city_wide_one(system, web, township, lead):
    setup_city(web)
    service = system.service("escalation").api["service"]
    plan = service.matrix.plan(CITY, township, "road", service.directory.department)
    assert plan.lead["_id"] == dept_id(lead) and plan.co == ()
    housing = service.matrix.plan(CITY, township, "housing", service.directory.department)
    assert housing.lead["_id"] == dept_id("zjj")
    assert [d["_id"] for d in housing.co] == [dept_id("dx"), dept_id("mzj")]


def office_matrix() -> bytes:
    """The matrix as a city office keeps it: a title row merged across, the same lead department
    merged over two categories, a notes row at the end."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["韶山市三长制部门责任清单（2026年）"])
    sheet.merge_cells("A1:D1")
    for row in full_rows():
        sheet.append(row)
    sheet["C5"] = None                      # environment's lead: merged from C4 (road's row, 城管局)
    sheet.merge_cells("C4:C5")
    sheet.append(["备注：未列出的镇(街道)按全市通用行办理。"])
    sheet.merge_cells(f"A{sheet.max_row}:D{sheet.max_row}")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_dry_run_previews_the_change_and_writes_nothing_then_commit_is_idempotent(system, web):
    setup_city(web)
    before = web.get(f"/api/v1/cities/{CITY}/matrix", headers=ADMIN_HEADERS).json
    resp = import_file(web, office_matrix(), "清单.xlsx&dry_run=true")
    assert resp.status_code == 200, resp.json
    preview = resp.json
    assert preview["dry_run"] is True and preview["changed"] is True
    assert preview["summary"] == {key: len(items) for key, items in preview["changes"].items()}
    # Against setup_city's matrix: road's city-wide lead and environment's co-handler differ.
    changed = {(c["category"], c["township"]): c for c in preview["changes"]["changed"]}
    assert set(changed) == {("road", None), ("environment", None)}
    assert changed[("road", None)]["lead"] == "韶山市城市管理和综合执法局"
    assert changed[("road", None)]["before"]["lead"] != changed[("road", None)]["lead"]
    assert (changed[("environment", None)]["before"]["co"], changed[("environment", None)]["co"]) == (["韶山市自然资源局"], [])
    assert [n["row"] for n in preview["notices"]] == [2, 14]  # the header on row 2; the notes row set aside
    assert web.get(f"/api/v1/cities/{CITY}/matrix", headers=ADMIN_HEADERS).json == before

    done = import_file(web, office_matrix(), f"清单.xlsx&base={preview['base']}")  # committed as previewed
    assert done.status_code == 200, done.json
    stale = import_file(web, xlsx(full_rows()), f"清单.xlsx&base={preview['base']}")  # that preview is past
    assert stale.status_code == 409 and "请重新预览" in stale.json["message"]
    environment = next(r for r in done.json["rows"] if r["category"] == "environment" and not r["township"])
    assert environment["lead"] == dept_id("cg")  # the merged cell gave it road's lead
    again = import_file(web, office_matrix(), "清单.xlsx&dry_run=true").json
    assert again["changed"] is False and set(again["summary"].values()) == {0}
    assert import_file(web, office_matrix(), "清单.xlsx").json["updated_at"] == done.json["updated_at"]


def test_a_bad_cell_in_an_office_matrix_names_its_cell(system, web):
    setup_city(web, matrix=False)
    data = office_matrix()
    book = openpyxl.load_workbook(io.BytesIO(data))
    book.active["C6"] = "韶山市火星局"
    out = io.BytesIO()
    book.save(out)
    for query in ("&dry_run=true", ""):
        resp = import_file(web, out.getvalue(), f"清单.xlsx{query}")
        assert resp.status_code == 422
        assert resp.json["errors"]["file"][0] | {"message": None} == {"row": 6, "column": "牵头部门", "cell": "C6",
                                                                      "message": None}
