"""Importing a township's 台账 over HTTP: a dry run shows what would change and writes nothing, the
commit writes it, the same file again changes nothing and says so; a bad file is refused whole with
the cells to fix."""
from __future__ import annotations

import copy
import json

from tests.support.ledgers import BLOCKS, ledger
from tests.support.runtime import token

TOWNSHIP = "430382100"
URL = f"/api/v1/townships/{TOWNSHIP}/roster"


def staff(system):
    return token(system, "staff", townships=(TOWNSHIP,), name="镇综治中心")


def upload(web, system, data: bytes, **query):
    return web.post(URL, data=data, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    query_string={"filename": "台账.xlsx", **query}, headers=staff(system))


def stored(system) -> tuple[list[dict], list[dict]]:
    org = system.service("dispatch").api["org"]
    units = sorted(org.units.find({"township": TOWNSHIP}), key=lambda u: u["_id"])
    households = sorted(org.households.find({"township": TOWNSHIP}), key=lambda h: h["_id"])
    return units, households


def imports(system) -> list[dict]:
    return system.service("dispatch").api["org"].imports.collection.find({"township": TOWNSHIP})


def test_dry_run_then_commit_then_the_same_file_again(system, web):
    first = upload(web, system, ledger(), dry_run="true")
    assert first.status_code == 200, first.json
    preview = first.json
    assert preview["dry_run"] is True and preview["changed"] is True
    assert preview["summary"]["posts_added"] == 5 and preview["summary"]["households_added"] == 5
    assert {p["path"] for p in preview["changes"]["posts_added"]} >= {"韶山村/一片/一组/第1邻", "韶山村/一片/一组/第2邻"}
    assert preview["notices"][0]["message"] == "表头在第2行，上方1行（标题等）未导入"
    assert stored(system) == ([], [])  # a dry run writes nothing
    assert imports(system) == []

    done = upload(web, system, ledger())
    assert done.status_code == 201, done.json
    assert done.json["changed"] is True and done.json["import_id"]
    assert done.json["counts"]["household"] == 5
    after = stored(system)

    again = upload(web, system, ledger(), dry_run="true")
    summary = dict(again.json["summary"])
    # Posts nobody can reach are a standing state, not a change: this ledger has no contacts sheet,
    # so its village committee and the township stay listed until contacts are given.
    assert summary.pop("unreachable_posts") == 2
    assert again.json["changed"] is False and set(summary.values()) == {0}
    same = upload(web, system, ledger())
    assert same.status_code == 201 and same.json == {**done.json, "import_id": None, "changed": False}
    assert stored(system) == after  # not one document rewritten (their versions would have moved)
    assert len(imports(system)) == 1


def test_the_preview_names_every_kind_of_change(system, web, clock):
    assert upload(web, system, ledger()).status_code == 201
    first_due = {h["head"]: h["visit_due"] for h in stored(system)[1]}
    clock.advance(days=3)
    blocks = copy.deepcopy(BLOCKS)
    blocks[0]["邻长"], blocks[0]["邻长电话"] = "李春生", "13873100009"       # a lead changed
    moved = blocks[0]["households"].pop()                                      # 李长庚 moves to 第2邻
    blocks[1]["households"].append(moved)
    blocks[1]["households"][0] = ("周建国", "韶山村一组21号", "13800000099")  # a phone changed
    blocks[1]["邻长电话"] = "0731-55512345"                                    # a landline only: no SMS
    blocks.append({"邻": "第3邻", "邻长": None, "邻长电话": None,              # a new, vacant post
                   "households": [("新住户", "韶山村一组40号", None)]})
    before = stored(system)
    preview = upload(web, system, ledger(blocks=blocks), dry_run="true").json
    summary = preview["summary"]
    assert summary == {"posts_added": 1, "posts_removed": 0, "leads_changed": 2, "vacancies": 1,
                       "households_added": 1, "households_removed": 0, "households_moved": 1,
                       "households_changed": 1, "unreachable_posts": 3}
    changes = preview["changes"]
    lead = next(c for c in changes["leads_changed"] if c["path"].endswith("第1邻"))
    assert lead["before"] == {"name": "周桂香", "phone": "138****0003", "wecom_id": None}
    assert lead["after"]["name"] == "李春生" and lead["after"]["phone"] == "138****0009"
    assert changes["households_moved"][0]["head"] == "李长庚"
    assert (changes["households_moved"][0]["from"], changes["households_moved"][0]["to"]) == (
        "韶山村/一片/一组/第1邻", "韶山村/一片/一组/第2邻")
    assert changes["vacancies"][0]["path"] == "韶山村/一片/一组/第3邻"
    # The landline-only 邻长, and the village committee and township that have no contacts yet.
    unreachable = {u["path"]: u["reason"] for u in changes["unreachable_posts"]}
    assert set(unreachable) == {"韶山村/一片/一组/第2邻", "韶山村", TOWNSHIP}
    assert "固定电话" in unreachable["韶山村/一片/一组/第2邻"] and unreachable["韶山村"] == "未登记联系人"
    assert "13873100009" not in str(preview)  # phones masked
    assert stored(system) == before

    assert upload(web, system, ledger(blocks=blocks)).json["changed"] is True
    households = {h["head"]: h for h in stored(system)[1]}
    assert households["李长庚"]["visit_due"] == first_due["李长庚"]  # a moved household keeps its visit record
    assert households["新住户"]["visit_due"] > first_due["毛德生"]   # a new one is first due from now


def test_a_commit_with_the_previews_base_is_refused_after_the_org_changed(system, web):
    assert upload(web, system, ledger()).status_code == 201
    blocks = copy.deepcopy(BLOCKS)
    blocks[0]["邻长"] = "李春生"
    base = upload(web, system, ledger(blocks=blocks), dry_run="true").json["base"]
    # Meanwhile someone else imports another change: the preview no longer says what would happen.
    other = copy.deepcopy(BLOCKS)
    other[1]["households"].pop()
    assert upload(web, system, ledger(blocks=other)).status_code == 201
    stale = upload(web, system, ledger(blocks=blocks), base=base)
    assert stale.status_code == 409 and "请重新预览" in stale.json["message"]
    fresh = upload(web, system, ledger(blocks=blocks), dry_run="true").json
    assert fresh["base"] != base and fresh["summary"]["households_added"] == 1
    assert upload(web, system, ledger(blocks=blocks), base=fresh["base"]).json["changed"] is True


def test_a_bad_file_is_refused_whole_with_its_cells_dry_run_or_not(system, web):
    assert upload(web, system, ledger()).status_code == 201
    before = stored(system)
    blocks = copy.deepcopy(BLOCKS)
    blocks[1]["households"][1] = ("文淑华", "", None)  # no address: row 7
    for query in ({"dry_run": "true"}, {}):
        resp = upload(web, system, ledger(blocks=blocks), **query)
        assert resp.status_code == 422, resp.json
        assert resp.json["errors"]["file"] == [{"row": 7, "column": "地址", "cell": "L7", "message": "「地址」不能为空"}]
    assert stored(system) == before


def test_the_cli_previews_with_dry_run_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from shared.cli import main

    monkeypatch.setenv("SANZHANG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SANZHANG_AMQP_URL", "memory://")
    path = tmp_path / "台账.xlsx"
    path.write_bytes(ledger())
    assert main(["import-roster", "--township", TOWNSHIP, "--name", "清溪镇", "--dry-run", str(path)]) == 0
    preview = json.loads(capsys.readouterr().out)
    assert preview["dry_run"] is True and preview["summary"]["households_added"] == 5
    assert main(["import-roster", "--township", TOWNSHIP, "--name", "清溪镇", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is True
    assert main(["import-roster", "--township", TOWNSHIP, "--dry-run", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False

    blocks = copy.deepcopy(BLOCKS)
    blocks[1]["households"][1] = ("文淑华", "", None)
    path.write_bytes(ledger(blocks=blocks))
    assert main(["import-roster", "--township", TOWNSHIP, "--dry-run", str(path)]) == 1
    assert capsys.readouterr().err.strip() == "第7行 L7 地址: 「地址」不能为空"
