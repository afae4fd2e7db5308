"""escalation's use cases: referred cases in, departments' work, the township's decisions, views.

Storage: one ``referrals`` document per case is the unit of work (state, outbox and the ids of
applied events and Idempotency-Keys travel together, written by one compare-and-set). A department's
list needs an index by department, and a case has several departments, so each write is followed
by a projection into ``desk`` (one row per case and department). The projection is derived data: a
write marks the document ``index_due`` and the projection clears it; a crash in between leaves the
mark for a sweeper that projects again, so a row is never lost, only late.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import timedelta

from shared.aggregates import Aggregates, NotFound, Unchanged
from shared.auth import Principal
from shared.clock import Clock, iso
from shared.domain.categories import CATEGORIES
from shared.domain.phones import mask as mask_phone
from shared.domain.spreadsheet import StalePreview, content_base
from shared.storage import DuplicateKey, Index, Store, VersionConflict
from shared.storage.blobs import blobs_for

from . import model
from .attachments import Attachments, BadFiles, blob_id_of, check as check_files, is_attachment
from .directory import Directory
from .idempotency import IdempotencyStore
from .matrix import MatrixRepository, check_row, matrix_changes, missing_categories, read_matrix
from .model import Hidden
from .policy import ClockPolicy, effective
from .webhooks import WebhookOutbox

log = logging.getLogger(__name__)

REFERRAL_INDEXES = [Index.on("township"), Index.on("township", "status"), Index.on("township", "updated_at"),
                    Index.on("report_id"), Index.on("status"), Index.on("timer_due"), Index.on("index_due"),
                    Index.on("outbox_due")]
DESK_INDEXES = [Index.on("department_id", "changed_at"), Index.on("department_id", "status"),
                Index.on("department_id", "due_at"), Index.on("department_id", "township"), Index.on("case_id")]
COPY_KEEP = timedelta(days=90)       # a report not referred by then never will be: its copy goes
INDEX_REPAIR_AFTER = timedelta(seconds=30)
ROW_FIELDS = {"类别": "category", "镇(街道)代码": "township", "牵头部门": "lead", "配合部门": "co"}

ACTIONS = {
    "accept": model.accept,
    "progress": model.progress,
    "extension": model.request_extension,
    "return": model.return_case,
    "part": model.submit_part,
    "sign_off": model.sign_off,
}
# Where an action's uploaded files are recorded: the same list the API's links go to.
FILE_FIELDS = {"sign_off": "attachments", "part": "attachments", "return": "evidence"}


class NotAllowed(Exception):
    """403: the caller may not do this (a department that is not active, say)."""


class BadField(Exception):
    """422 naming the request field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def encode_cursor(changed_at: str, row_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([changed_at, row_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return value[0], value[1]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise BadField("cursor", "无效的分页游标，请使用上一页返回的 next_cursor")


class EscalationService:
    def __init__(self, store: Store, clock: Clock, waker=None):
        self.clock = clock
        self.directory = Directory(store, clock)
        self.matrix = MatrixRepository(store, clock)
        self.referrals = Aggregates(store.collection("referrals", REFERRAL_INDEXES), clock, waker)
        self.desk = store.collection("desk", DESK_INDEXES)
        self.copies = store.collection("report_copies", [Index.on("purge_due")])
        self.idempotency = IdempotencyStore(store, clock)
        self.webhooks = WebhookOutbox(store, clock, self.directory)
        self.files = Attachments(blobs_for(store, "attachments"), clock)

    def policy_for(self, dept: dict) -> ClockPolicy:
        return effective(self.directory.city(dept["city"]), dept)

    # == events in ===============================================================================
    def on_case_referred(self, event: dict) -> None:
        payload = event["payload"]
        if self.referrals.get(payload["case_id"]) is not None:
            return  # redelivered (or referred twice): the first referral stands
        township = event["township"]
        city = township[:6]
        now = self.clock.now()
        plan = self.matrix.plan(city, township, payload["category"], self.directory.department)
        copy = self.copies.get(payload["report_id"])
        doc, events = model.open_referral(event, city, plan, self.policy_for, _report_of(copy), now)
        doc["seen"] = [event["id"]]
        doc["index_due"] = iso(now + INDEX_REPAIR_AFTER)
        try:
            stored = self.referrals.add(doc, events)
        except DuplicateKey:
            return
        self._sync(stored)
        log.info("case referred to departments: %s", doc["status"],
                 extra={"case_id": doc["_id"], "township": township})
        if copy is not None:
            self.copies.delete(copy["_id"])
        else:
            self._adopt_copy(stored["_id"], stored["report_id"])

    def on_report_submitted(self, event: dict) -> None:
        """Keeps what a department may need of the report, in case it is referred one day."""
        payload = event["payload"]
        now = self.clock.now()
        copy = model.report_copy(payload, event["township"], now)
        try:
            self.copies.insert({"_id": payload["report_id"], **copy, "purge_due": iso(now + COPY_KEEP)})
        except DuplicateKey:
            return  # redelivered: the first delivery stored it (and gave it to a referral, if any)
        # Looked for after the copy is stored, so one look-up serves both orders: a referral stored
        # earlier (its case.referred came first) or meanwhile adopts the copy now; one stored later
        # finds the copy itself (on_case_referred). The common case — no referral — reads once.
        found = self.referrals.collection.find({"report_id": payload["report_id"]}, limit=1)
        if found:
            self._adopt_copy(found[0]["_id"], payload["report_id"])

    def on_department_event(self, event: dict) -> None:
        self.webhooks.enqueue(event)

    def _adopt_copy(self, case_id: str, report_id: str) -> None:
        copy = self.copies.get(report_id)
        if copy is not None:
            self._attach(case_id, _report_of(copy))
            self.copies.delete(report_id)

    def _attach(self, case_id: str, report: dict) -> None:
        def change(doc):
            if doc.get("report"):
                raise Unchanged
            doc["report"] = report
            doc["updated_at"] = iso(self.clock.now())
            return ()
        try:
            self._mutate(case_id, change)
        except NotFound:
            pass

    def purge_copy(self, claimed: dict) -> None:
        """DueSweeper's work: a report copy never referred is deleted after COPY_KEEP."""
        self.copies.delete(claimed["_id"])

    # == timers ==================================================================================
    def fire_timers(self, claimed: dict) -> list[dict]:
        """DueSweeper's work on ``timer_due``: fires what is due now; a stale claim only reschedules."""
        now = self.clock.now()
        staged: list[dict] = []

        def change(doc):
            staged.clear()
            before = doc.get("timer_due")
            city = self.directory.city(doc["city"]) or {}
            staged.extend(model.fire_due(doc, now, city.get("supervisor")))
            if not staged and doc["timer_due"] == before:
                raise Unchanged
            return list(staged)

        try:
            self._mutate(claimed["_id"], change)
        except NotFound:
            return []
        return list(staged)

    # == storage helpers =========================================================================
    def _mutate(self, case_id: str, change, applying: str | None = None) -> dict:
        def marked(doc):
            events = change(doc)
            doc["index_due"] = iso(self.clock.now() + INDEX_REPAIR_AFTER)
            return events
        stored = self.referrals.mutate(case_id, marked, applying=applying)
        self._sync(stored)
        return stored

    def _sync(self, doc: dict) -> None:
        if doc.get("index_due") is None:
            return
        self.project(doc)
        try:
            self.referrals.collection.replace({**doc, "index_due": None}, doc["version"])
        except VersionConflict:
            pass  # written again meanwhile: that write projects (or the repair sweeper does)

    def repair_index(self, claimed: dict) -> None:
        """DueSweeper's work on ``index_due``: a write whose projection did not finish."""
        current = self.referrals.get(claimed["_id"])
        if current is not None:
            self._sync(current)

    def project(self, doc: dict) -> None:
        rows = {}
        for part in doc["parts"]:
            if part["status"] == "transferred":
                continue
            rows[part["department_id"]] = {
                "_id": f"{doc['_id']}:{part['department_id']}", "case_id": doc["_id"],
                "department_id": part["department_id"], "township": doc["township"], "role": part["role"],
                "status": part["status"], "case_status": doc["status"], "due_at": model.current_due(part),
                "accept_due": part["accept_due"], "finish_due": part["finish_due"],
                "changed_at": doc["updated_at"], "tracking_no": doc["tracking_no"], "category": doc["category"],
                "summary": doc.get("summary"), "urgent": bool(doc.get("urgent")), "case_version": doc["version"]}
        for old in self.desk.find({"case_id": doc["_id"]}):
            if old["department_id"] not in rows:
                self.desk.delete(old["_id"])
            elif old.get("case_version", 0) > doc["version"]:
                rows.pop(old["department_id"])  # a newer write already projected this row
        for row in rows.values():
            self.desk.upsert(row)

    # == departments' work =======================================================================
    def department_for(self, principal: Principal) -> dict:
        dept = self.directory.department(principal.department_id)
        if dept is None or not dept.get("active", True):
            raise NotAllowed("部门不存在或已停用")
        return dept

    def department_case(self, principal: Principal, case_id: str) -> tuple[dict, dict]:
        dept = self.department_for(principal)
        doc = self.referrals.get(case_id)
        if doc is None:
            raise Hidden(case_id)
        model.part_of(doc, dept["_id"])
        return doc, dept

    def act(self, principal: Principal, case_id: str, action: str, *, idempotency_key: str | None = None,
            **kwargs) -> tuple[dict, dict]:
        dept = self.department_for(principal)
        actor = model.Actor(principal.name or dept["name"], "department")
        now = self.clock.now()
        step = ACTIONS[action]
        self._own_files(case_id, kwargs)

        def change(doc):
            return step(doc, model.part_of(doc, dept["_id"]), now, actor, **kwargs)

        applying = f"idem:{dept['_id']}:{idempotency_key}" if idempotency_key else None
        try:
            stored = self._mutate(case_id, change, applying=applying)
        except NotFound:
            raise Hidden(case_id) from None
        model.part_of(stored, dept["_id"])
        return stored, dept

    def act_with_files(self, principal: Principal, case_id: str, action: str, files: list[bytes], *,
                       idempotency_key: str | None = None, **kwargs) -> tuple[dict, dict]:
        """An action carrying uploaded files (销号, 配合意见: attachments; 退单: evidence). The case is
        checked first (not the department's: Hidden, whatever the files), then the files; a refused
        action takes back the blobs it alone stored, so nothing is left half-written."""
        if not files:
            return self.act(principal, case_id, action, idempotency_key=idempotency_key, **kwargs)
        doc, dept = self.department_case(principal, case_id)
        if action not in FILE_FIELDS:
            raise BadField("files", "此操作不能上传附件")
        try:
            uploads = check_files(files)
        except BadFiles as exc:
            raise BadField(exc.field, exc.message) from None
        urls, created = self.files.store(doc, dept, principal.name or dept["name"], uploads)
        field = FILE_FIELDS[action]
        kwargs[field] = [*[u for u in kwargs.get(field) or [] if u not in urls], *urls]
        try:
            return self.act(principal, case_id, action, idempotency_key=idempotency_key, **kwargs)
        except BaseException:
            self.files.discard(created)
            raise

    def upload(self, principal: Principal, case_id: str, files: list[bytes]) -> list[dict]:
        """The departments' API: files stored ahead of the action that names their addresses."""
        doc, dept = self.department_case(principal, case_id)
        try:
            uploads = check_files(files)
        except BadFiles as exc:
            raise BadField(exc.field, exc.message) from None
        urls, _ = self.files.store(doc, dept, principal.name or dept["name"], uploads)
        return [{"url": url, "content_type": up.content_type, "size": len(up.data)} for url, up in zip(urls, uploads)]

    def _own_files(self, case_id: str, kwargs: dict) -> None:
        """An address of escalation's own files must name a file of this very case."""
        for field in set(FILE_FIELDS.values()):
            for url in kwargs.get(field) or []:
                blob = self.files.read(blob_id_of(url)) if is_attachment(url) else None
                if url.startswith("/") and (blob is None or blob.meta.get("case_id") != case_id):
                    raise BadField(field, f"附件 {url} 不是该工单上传的文件：请先上传（POST …/cases/{{id}}/files）")

    def attachment(self, principal: Principal | None, blob_id: str):
        """A file of a case, for a department with a part in it or the staff of its township; for
        anyone else (another department, another township, a resident, a lead) it does not exist."""
        blob = self.files.read(blob_id) if principal is not None else None
        if blob is None:
            raise Hidden(blob_id)
        if principal.role == "staff" and blob.meta.get("township") in principal.townships:
            return blob
        if principal.role == "department" and principal.department_id:
            doc = self.referrals.get(blob.meta.get("case_id") or "")
            if doc and any(p["department_id"] == principal.department_id for p in doc.get("parts") or []):
                return blob
        raise Hidden(blob_id)

    def list_for_department(self, principal: Principal, *, statuses=None, township=None, due_before=None,
                            changed_since=None, limit: int = 50, cursor: str | None = None) -> tuple[list[dict], str | None]:
        """Oldest change first, so a poller walks forward with next_cursor and never misses a change."""
        dept = self.department_for(principal)
        where: dict = {"department_id": dept["_id"]}
        if statuses:
            where["status"] = {"$in": list(statuses)}
        if township:
            where["township"] = township
        if due_before:
            where["due_at"] = {"$lt": due_before}
        after = decode_cursor(cursor) if cursor else None
        floor = max([t for t in (changed_since, after[0] if after else None) if t], default=None)
        if floor:
            where["changed_at"] = {"$gte": floor}
        out: list[dict] = []
        skip, chunk = 0, limit + 1
        while len(out) <= limit:
            batch = self.desk.find(where, sort=[("changed_at", 1), ("_id", 1)], limit=chunk, skip=skip)
            for row in batch:
                if after and (row["changed_at"], row["_id"]) <= after:
                    continue
                out.append(row)
            if len(batch) < chunk:
                break
            skip += chunk
        page = out[:limit]
        more = len(out) > limit
        return page, (encode_cursor(page[-1]["changed_at"], page[-1]["_id"]) if more and page else None)

    # == the township's decisions ================================================================
    def staff_referral(self, principal: Principal, case_id: str) -> dict:
        doc = self.referrals.get(case_id)
        if doc is None or not principal.sees(doc["township"]):
            raise Hidden(case_id)
        return doc

    def _staff_change(self, principal: Principal, case_id: str, change) -> dict:
        self.staff_referral(principal, case_id)
        try:
            return self._mutate(case_id, change)
        except NotFound:
            raise Hidden(case_id) from None

    def decide_extension(self, principal: Principal, case_id: str, extension_id: str, approve: bool, *,
                         working_days: int | None = None, note: str | None = None) -> dict:
        actor = _staff_actor(principal)
        now = self.clock.now()

        def change(doc):
            try:
                return model.decide_extension(doc, extension_id, approve, now, actor, working_days=working_days,
                                              note=note)
            except LookupError:
                raise Hidden(extension_id) from None
        return self._staff_change(principal, case_id, change)

    def choose_lead(self, principal: Principal, case_id: str, department_id: str, note: str | None = None) -> dict:
        doc = self.staff_referral(principal, case_id)
        dept = self.directory.department(department_id)
        if dept is None or dept["city"] != doc["city"] or not dept.get("active", True):
            raise BadField("department_id", f"本市({doc['city']})没有编号为 {department_id} 的在用部门")
        actor = _staff_actor(principal)
        now = self.clock.now()
        policy = self.policy_for(dept)
        return self._staff_change(principal, case_id,
                                  lambda d: model.choose_lead(d, dept, policy, now, actor, note))

    def rule(self, principal: Principal, case_id: str, ruling: str) -> dict:
        actor = _staff_actor(principal)
        now = self.clock.now()
        return self._staff_change(principal, case_id, lambda d: model.rule_back(d, now, actor, ruling))

    def township_referrals(self, township: str, status: str | None, limit: int, offset: int) -> list[dict]:
        where: dict = {"township": township}
        if status:
            where["status"] = status
        return self.referrals.collection.find(where, sort=[("updated_at", -1)], limit=limit, skip=offset)

    # == the matrix ==============================================================================
    def lookup_department(self, city: str):
        def lookup(text: str) -> dict | None:
            doc = self.directory.lookup(city, text)
            return doc if doc is not None and doc.get("active", True) else None
        return lookup

    def import_matrix(self, city: str, data: bytes, filename: str, actor: str, base: str | None = None) -> dict:
        """Replaces the city's matrix in one write; the same rows again write nothing. With a
        preview's ``base``, refuses (StalePreview) if the matrix changed since that preview."""
        rows, _ = read_matrix(city, data, filename, self.lookup_department(city))
        preview = self.preview_of(city, rows)
        if base is not None and base != preview["base"]:
            raise StalePreview()
        if not preview["changed"]:
            return self.matrix.get(city)
        return self.matrix.replace(city, rows, actor, source=f"import:{filename}")

    def preview_matrix(self, city: str, data: bytes, filename: str) -> dict:
        """The dry run: rows added, changed and removed against the stored matrix; nothing written."""
        rows, notices = read_matrix(city, data, filename, self.lookup_department(city))
        return {"dry_run": True, "city": city, **self.preview_of(city, rows), "notices": notices}

    def preview_of(self, city: str, rows: list[dict]) -> dict:
        names = {d["_id"]: d["name"] for d in self.directory.of_city(city)}
        current = self.matrix.get(city)["rows"]
        changes = matrix_changes(current, rows, lambda dept: names.get(dept, dept))
        summary = {key: len(items) for key, items in changes.items()}
        return {"changed": any(summary.values()), "base": content_base(current), "summary": summary, "changes": changes}

    def put_matrix_row(self, city: str, body: dict, actor: str) -> dict:
        row, problems = check_row(city, body["category"], body.get("township"), body["lead"], body.get("co", []),
                                  self.lookup_department(city))
        if problems:
            column, message = problems[0]
            raise BadField(ROW_FIELDS.get(column, "category"), message)
        return self.matrix.put_row(city, row, actor)

    def matrix_view(self, city: str) -> dict:
        doc = self.matrix.get(city)
        names = {d["_id"]: d["name"] for d in self.directory.of_city(city)}
        rows = [{**r, "lead_name": names.get(r["lead"]), "co_names": [names.get(c, c) for c in r.get("co", [])]}
                for r in doc["rows"]]

        return {"city": city, "rows": rows, "updated_at": doc.get("updated_at"), "updated_by": doc.get("updated_by"),
                "source": doc.get("source"),
                "missing": [{"category": c, "name": CATEGORIES[c]} for c in missing_categories(doc["rows"])]}


def _report_of(copy: dict | None) -> dict | None:
    if copy is None:
        return None
    return {k: v for k, v in copy.items() if k not in ("_id", "version", "purge_due")}


def _staff_actor(principal: Principal) -> model.Actor:
    return model.Actor(principal.name or principal.role, "township" if principal.role == "staff" else principal.role)


# == views =========================================================================================

def part_view(part: dict, *, full: bool) -> dict:
    view = {"department_id": part["department_id"], "department_name": part["department_name"],
            "role": part["role"], "role_text": model.ROLE_TEXT[part["role"]], "status": part["status"],
            "status_text": model.PART_STATUS_TEXT.get(part["status"], part["status"]),
            "assigned_at": part["assigned_at"], "accepted_at": part.get("accepted_at"),
            "accept_due": part["accept_due"], "finish_due": part["finish_due"], "due_at": model.current_due(part),
            "submission": part.get("submission"), "sign_off": part.get("sign_off")}
    if full:
        view.update(return_until=part.get("return_until"), return_used=part.get("return_used", False),
                    returned=part.get("return"), extensions=part.get("extensions", []),
                    breaches=part.get("breaches", []), round=part.get("round", 1))
    return view


def case_view(doc: dict, *, dept: dict | None) -> dict:
    """A department's view (its own part in full, phone per its sees_phone) or, with dept None, staff's."""

    report = dict(doc.get("report") or {}) or None
    if report is not None:
        report.pop("kept_at", None)
        if not (dept and dept.get("sees_phone")):
            report["reporter_phone"] = mask_phone(report.get("reporter_phone"))
    visible = [p for p in doc["parts"] if dept is None or p["status"] != "transferred"]
    mine = model.part_of(doc, dept["_id"]) if dept else None
    referral = doc.get("referral") or {}
    previous = referral.get("previous") or {}
    return {
        "case_id": doc["_id"], "tracking_no": doc["tracking_no"], "report_id": doc["report_id"],
        "township": doc["township"], "city": doc["city"], "category": doc["category"],
        "category_name": CATEGORIES.get(doc["category"], doc["category"]), "tier": doc.get("tier"),
        "urgent": bool(doc.get("urgent")), "summary": doc.get("summary"), "promise_due": doc.get("promise_due"),
        "case_status": doc["status"], "case_status_text": model.CASE_STATUS_TEXT.get(doc["status"], doc["status"]),
        "lead_department_id": doc.get("lead"),
        "my_part": part_view(mine, full=True) if mine else None,
        "parts": [part_view(p, full=dept is None or p is mine) for p in visible],
        "referral": {"reason": referral.get("reason"), "note": referral.get("note"),
                     "referred_at": referral.get("referred_at"), "from_unit": previous.get("unit_name"),
                     "from_level": previous.get("level")},
        "report": report, "resolution": doc.get("resolution"), "timeline": doc["timeline"],
        "created_at": doc["created_at"], "updated_at": doc["updated_at"],
    }
