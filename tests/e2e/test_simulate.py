"""`sanzhang simulate` at CI size: one township (900 households, reports ×10) for a month,
through the real services under virtual time, twice — once with today's 0211 policy and once with
the same policy written to a file as a county would — so the what-if path runs and the same seed
must give the same year to the last figure. Then the closing count, the HTML and the XLSX."""
from __future__ import annotations

import io
import json
import sqlite3

from openpyxl import load_workbook

from shared.cli import main
from sim.system import SimSystem

ARGS = ["simulate", "--preset", "township", "--days", "30", "--intensity", "10", "--seed", "4"]


def _todays_policy(tmp_path) -> str:
    from datetime import datetime, timezone

    sim = SimSystem(tmp_path / "probe", datetime(2026, 1, 1, tzinfo=timezone.utc))
    try:
        sim.call("POST", "/api/v1/admin/townships", sim.admin_headers(), json={"code": "430382100", "name": "清溪镇"})
        policy = sim.call("GET", "/api/v1/townships/430382100/sla-policy", sim.admin_headers())
    finally:
        sim.close()
    path = tmp_path / "today.json"
    path.write_text(json.dumps(policy, ensure_ascii=False))
    return str(path)


def test_a_month_of_a_township_runs_through_the_real_code_and_counts_nothing_lost(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main([*ARGS, "--compare", _todays_policy(tmp_path), "--out", str(out), "--data-dir", str(tmp_path / "data")])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    summary = json.loads((out / "summary.json").read_text())
    first, second = summary
    for run in summary:
        audit = run["audit"]
        assert audit["ok"], audit
        assert audit["reports"] > 15 and audit["cases"] + audit["instant_answers"] == audit["reports"]
        assert audit["dead_letters"] == audit["outbox_backlog"] == audit["waiting_on_bus"] == 0
        assert run["counts"]["visits"] > 30 and run["counts"]["actions"]["accept"] > 0
    # The same seed, the same policy: the same year, action for action.
    assert first["counts"]["actions"] == second["counts"]["actions"]
    assert first["counts"]["reports"] == second["counts"]["reports"]
    assert "OK" in printed and "MISMATCH" not in printed
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 7 and "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert "现行0211" in html and "today" in html and "收尾核对" in html
    book = load_workbook(io.BytesIO((out / "figures-1-现行0211-430382100.xlsx").read_bytes()), read_only=True)
    headers = [c for row in book.worksheets[0].iter_rows(max_row=3, values_only=True) for c in row if c]
    assert "收集问题(件)" in headers and "响应率" in headers


def test_a_malformed_policy_is_refused_naming_the_field(tmp_path, capsys):
    bad = tmp_path / "county.json"
    policy = json.loads(open(_todays_policy(tmp_path)).read())
    policy["tiers"]["general"]["levels"]["group"]["accept"] = "two hours"
    bad.write_text(json.dumps(policy, ensure_ascii=False))
    rc = main([*ARGS, "--days", "1", "--policy", str(bad), "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "policy" in err and "tiers.general.levels.group.accept" in err
    rc = main([*ARGS, "--days", "0", "--out", str(tmp_path / "out")])
    assert rc == 2 and "days" in capsys.readouterr().err


def test_a_real_deployments_data_folder_is_refused(tmp_path, capsys):
    real = tmp_path / "data"
    real.mkdir()
    with sqlite3.connect(real / "sanzhang_dispatch.db") as conn:
        conn.execute("CREATE TABLE c_townships (_id TEXT PRIMARY KEY, version INTEGER, doc TEXT)")
        conn.execute("INSERT INTO c_townships VALUES ('430382100', 1, '{}')")
    rc = main([*ARGS, "--days", "1", "--data-dir", str(real), "--out", str(tmp_path / "out")])
    assert rc == 2 and "430382100" in capsys.readouterr().err
    assert (real / "sanzhang_dispatch.db").stat().st_size > 0
