"""One seeded embedded system with two townships in two cities (World), the OpenAPI document and the caller each
operation is for: shared by the abuse suite and the API fuzz (no tests here)."""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from services.dispatch import transitions
from services.dispatch.cases import case_id_for
from services.dispatch.demo_roster import demo_contacts_csv, demo_roster_csv
from shared.auth import Principal
from shared.cli import _load_demo
from shared.clock import FakeClock
from shared.runtime import SERVICES, Runtime
from shared.web import create_app
from tests.support.escalation import MATRIX_CSV
from tests.support.runtime import ADMIN_HEADERS, make_settings


A = "430382100"                 # 清溪镇, the demo township, city 430382
B = "430521100"                 # 白果镇, a township of another city, same roster file
C = "430382101"                 # a neighbouring township of A's city (tokens only)
CITY_A, CITY_B = A[:6], B[:6]
ADDRESS = "韶山村一组12号"        # 韶山村/一片/一组/第1邻, 邻长 周桂香
OTHER_ADDRESS = "韶山村一组21号"  # 韶山村/一片/一组/第2邻, 邻长 李春生
START = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)   # Monday 09:00 in Shaoshan

_DOC: list[dict] = []


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def bearer(tok: str) -> dict:
    return {"Authorization": f"Bearer {tok}"}


@dataclass
class World:
    """One embedded system: townships A (with its city's departments) and B (another city), a case
    held by a lead in each, a referred case with a pending extension, a supervision, a photo, a
    follow-up call, quarterly cards, knowledge-base entries — and a credential for every kind of caller."""

    runtime: Runtime
    clock: FakeClock
    app: object
    web: object
    creds: dict[str, dict] = field(default_factory=dict)      # name -> headers
    ids: dict[str, str] = field(default_factory=dict)         # path parameter -> A's real id
    b_ids: dict[str, str] = field(default_factory=dict)       # the same for B, where it has one

    @classmethod
    def build(cls, tmp_path: Path, extra_env: dict | None = None, *, seed: bool = True, **settings) -> "World":
        """``seed=False``: the demo township and the credentials only."""
        clock = FakeClock(START)
        runtime = Runtime(make_settings(tmp_path, extra=extra_env or {}, **settings), SERVICES, clock=clock).start()
        app = create_app(runtime)
        app.testing = True
        world = cls(runtime, clock, app, app.test_client())
        try:
            world._seed() if seed else world._credentials()
        except BaseException:
            runtime.stop()
            raise
        return world

    def stop(self) -> None:
        self.runtime.stop()

    # -- helpers -------------------------------------------------------------------------------
    def token(self, role: str, townships=(A,), **kw) -> dict:
        return bearer(self.runtime.issuer.issue(Principal(role=role, townships=tuple(townships), **kw)))

    def ok(self, resp, status: int = 200):
        assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
        return resp.json

    def drain(self) -> None:
        assert self.runtime.drain()

    def org(self):
        return self.runtime.service("dispatch").api["org"]

    def unit(self, township: str, *path: str) -> dict:
        units = self.org().tree(township)
        parent = None
        for level, name in zip(("village", "area", "group", "neighbourhood"), path):
            parent = next(u for u in units if u["level"] == level and u["name"] == name
                          and (parent is None or u["parent_id"] == parent["_id"]))
        return parent

    def lead_of(self, township: str, unit: dict) -> dict:
        return self.token("lead", (township,), unit_id=unit["_id"], name=unit["lead"]["name"])

    def report(self, township: str, address: str, *, category: str = "environment", phone: str = "13800000001",
               headers: dict | None = None) -> dict:
        body = {"township": township, "address": address, "category": category, "reporter_phone": phone,
                "description": "门口路灯坏了一个星期，晚上出行不安全", "channel": "mini_program"}
        created = self.ok(self.web.post("/api/v1/reports", json=body,
                                        headers=headers or self.token("client", (township,))), 201)
        self.drain()
        return created

    # -- the dataset ---------------------------------------------------------------------------
    def _credentials(self) -> None:
        _load_demo(self.runtime)
        a_nb1 = self.unit(A, "韶山村", "一片", "一组", "第1邻")
        self.creds.update({"operator": ADMIN_HEADERS, "staff_a": self.token("staff", (A,), name="清溪镇李干事"),
                           "client_a": self.token("client", (A,), name="清溪镇小程序"),
                           "lead_a": self.lead_of(A, a_nb1), "staff_b": self.token("staff", (B,), name="白果镇王干事")})

    def _seed(self) -> None:
        web, rt = self.web, self.runtime
        rt.service("intake").api["followup_sweeper"].stop()        # fired by hand below
        _load_demo(rt)
        self.ok(web.post("/api/v1/admin/townships", json={"code": B, "name": "白果镇", "city": CITY_B},
                         headers=ADMIN_HEADERS), 201)
        self.ok(web.post(f"/api/v1/townships/{B}/roster?filename=roster.csv", data=demo_roster_csv(),
                         headers=ADMIN_HEADERS), 201)
        self.ok(web.post(f"/api/v1/townships/{B}/contacts-import?filename=contacts.csv", data=demo_contacts_csv(),
                         headers=ADMIN_HEADERS), 201)
        contact_ids = {t: rt.service("dispatch").api["contact_book"].list(t)[0]["_id"] for t in (A, B)}

        a_nb1, a_nb2 = self.unit(A, "韶山村", "一片", "一组", "第1邻"), self.unit(A, "韶山村", "一片", "一组", "第2邻")
        b_nb1 = self.unit(B, "韶山村", "一片", "一组", "第1邻")
        self.creds.update({
            "operator": ADMIN_HEADERS,
            "staff_a": self.token("staff", (A,), name="清溪镇李干事"),
            "client_a": self.token("client", (A,), name="清溪镇小程序"),
            "lead_a": self.lead_of(A, a_nb1),                  # holds A's cases
            "lead_a_other": self.lead_of(A, a_nb2),            # another post of the same township
            "city_staff_a": self.token("staff", (A,), name="韶山市督查室", scopes=("city",)),
            "staff_b": self.token("staff", (B,), name="白果镇王干事"),
            "client_b": self.token("client", (B,), name="白果镇小程序"),
            "lead_b": self.lead_of(B, b_nb1),
            "city_staff_b": self.token("staff", (B,), name="湘乡市督查室", scopes=("city",)),
            "staff_c": self.token("staff", (C,), name="邻镇干事"),
        })

        # A follow-up call first: it needs the clock moved on past an unrated resolution.
        done = self.report(A, ADDRESS, phone="13973200001")
        done_case = case_id_for(done["id"])
        self.ok(web.post(f"/api/v1/cases/{done_case}/accept", json={}, headers=self.creds["lead_a"]))
        self.ok(web.post(f"/api/v1/cases/{done_case}/resolve", json={"note": "已更换灯泡"}, headers=self.creds["lead_a"]))
        self.drain()
        self.clock.advance(days=3, hours=1)
        assert rt.service("intake").api["followup_sweeper"].run_once() == 1
        [followup] = self.ok(web.get(f"/api/v1/townships/{A}/followups", headers=self.creds["staff_a"]))

        # A's case held by lead_a, with a supervision and a photo; B's case held by lead_b.
        report = self.report(A, ADDRESS)
        case_id = case_id_for(report["id"])
        detail = self.ok(web.post(f"/api/v1/cases/{case_id}/supervise", json={"note": "请今天内接单"},
                                  headers=self.creds["staff_a"]))
        supervision_id = detail["supervisions"][-1]["id"]
        photo = self.ok(web.post(f"/api/v1/reports/{report['id']}/photos", data={"file": (io.BytesIO(png()), "lamp.png")},
                                 headers=self.creds["staff_a"], content_type="multipart/form-data"), 201)
        b_report = self.report(B, ADDRESS)
        b_case = case_id_for(b_report["id"])
        b_detail = self.ok(web.post(f"/api/v1/cases/{b_case}/supervise", json={"note": "请今天内接单"},
                                    headers=self.creds["staff_b"]))

        # The city's departments, matrix and credentials; one department in B's city.
        self.ok(web.put(f"/api/v1/cities/{CITY_A}", json={"name": "韶山市"}, headers=ADMIN_HEADERS))
        self.ok(web.put(f"/api/v1/cities/{CITY_B}", json={"name": "湘乡市"}, headers=ADMIN_HEADERS))
        departments = {"zjj": (CITY_A, "韶山市住房和城乡建设局"), "jtj": (CITY_A, "韶山市交通运输局"),
                       "zrzy": (CITY_A, "韶山市自然资源局"), "mzj": (CITY_A, "韶山市民政局"),
                       "dx": (CITY_A, "中国电信韶山分公司"), "cg": (CITY_A, "韶山市城市管理和综合执法局"),
                       "b-zjj": (CITY_B, "湘乡市住房和城乡建设局")}
        key_ids = {}
        for short, (city, name) in departments.items():
            dept = f"{city}-{short.removeprefix('b-')}"
            self.ok(web.post(f"/api/v1/cities/{city}/departments", json={"id": dept, "name": name},
                             headers=ADMIN_HEADERS), 201)
            issued = self.ok(web.post(f"/api/v1/departments/{dept}/credentials", json={"label": "业务系统"},
                                      headers=ADMIN_HEADERS), 201)
            self.creds[f"dept_{short.replace('-', '_')}"] = bearer(issued["token"])
            key_ids[dept] = issued["key_id"]
        self.ok(web.post(f"/api/v1/cities/{CITY_A}/matrix/import?filename=matrix.csv",
                         data=MATRIX_CSV.encode("utf-8"), headers=ADMIN_HEADERS))

        # A referred housing case: 住建局 leads, 电信 and 民政局 co-handle; 住建局 asks for more time.
        referred = self.report(A, OTHER_ADDRESS, category="housing")
        referred_case = case_id_for(referred["id"])
        rt.service("dispatch").api["cases"].mutate(
            referred_case, lambda c: transitions.refer(c, self.clock.now(), reason="需要部门协调解决",
                                                       actor=transitions.Actor("清溪镇李干事", "staff")))
        self.drain()
        zjj = self.creds["dept_zjj"]
        self.ok(web.post(f"/api/v1/department/cases/{referred_case}/accept", json={}, headers=zjj))
        part = self.ok(web.post(f"/api/v1/department/cases/{referred_case}/extension",
                                json={"working_days": 5, "reason": "需等待第三方鉴定报告"}, headers=zjj))
        extension_id = part["my_part"]["extensions"][-1]["id"]

        # Quarterly cards for A's leads; the knowledge base is the demo's.
        cards = self.ok(web.post(f"/api/v1/townships/{A}/reviews", json={"quarter": "2026Q4"},
                                 headers=self.creds["staff_a"]), 201)
        kb = self.ok(web.get(f"/api/v1/townships/{A}/kb", headers=self.creds["staff_a"]))
        self.drain()

        # 积分超市: an item on A's shelf, and lead_a's exchange (the case above earned the points).
        item = self.ok(web.post(f"/api/v1/townships/{A}/rewards", json={"name": "肥皂", "price": 1, "stock": 5},
                                headers=self.creds["staff_a"]), 201)
        exchange = self.ok(web.post("/api/v1/my/exchanges", json={"item_id": item["id"], "key": "ex-abuse-0001"},
                                    headers=self.creds["lead_a"]), 201)
        self.ids.update(item_id=item["id"], exchange_id=exchange["id"])

        # A person's account of A (services/dispatch/accounts.py), for the paths that name one.
        account = self.ok(web.post("/api/v1/accounts", json={"kind": "staff", "name": "甲镇职员", "phone": "13700009001",
                                                              "township": A}, headers=self.creds["operator"]), 201)
        self.ids.update({
            "account_id": account["id"], "ref": report["tracking_no"], "photo_id": photo["photo"]["id"], "code": A, "entry": kb[0]["code"],
            "followup_id": followup["id"], "case_id": case_id, "supervision_id": supervision_id,
            "card_id": cards[0]["_id"], "unit_id": a_nb1["_id"], "city": CITY_A, "department_id": f"{CITY_A}-zjj",
            "key_id": key_ids[f"{CITY_A}-zjj"], "extension_id": extension_id, "service_request_id": report["tracking_no"],
            "referred_case_id": referred_case, "report_id": report["id"], "contact_id": contact_ids[A],
        })
        self.b_ids.update({"ref": b_report["tracking_no"], "code": B, "case_id": b_case, "city": CITY_B,
                           "supervision_id": b_detail["supervisions"][-1]["id"], "unit_id": b_nb1["_id"],
                           "department_id": f"{CITY_B}-zjj", "key_id": key_ids[f"{CITY_B}-zjj"],
                           "contact_id": contact_ids[B]})


def operations(spec: dict):
    """(METHOD, path, operation) for every operation of the document."""
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation


def _document() -> dict:
    """The document, read once at collection from an app that is never started."""
    if not _DOC:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            runtime = Runtime(make_settings(Path(tmp)), SERVICES)
            try:
                _DOC.append(create_app(runtime).test_client().get("/openapi.json").json)
            finally:
                for store in runtime.stores.values():
                    store.close()
    return _DOC[0]


def credential_for(world: World, path: str) -> dict:
    """The caller an operation is for (tests/system/test_fuzz_api.py uses the same)."""
    if path.startswith("/api/v1/department/") or path == "/api/v1/department":
        return world.creds["dept_zjj"]
    if path.startswith("/api/v1/my/") or path == "/api/v1/visits" or path.endswith("/contact"):
        return world.creds["lead_a"]   # 回电 (/reports/{ref}/contact): the lead holding the case
    if path.startswith(("/api/v1/reports", "/api/v1/photos/", "/open311/")):
        return world.creds["client_a"]
    return world.creds["operator"]
