"""A township's knowledge base of common questions (常见问题库): entries, spreadsheet import, and the
matcher built from them.

An entry is 问题 (the question as the township words it), 答案, 关键词 (other ways residents put it,
which the matcher indexes with the question) and 类别 (a label such as 医保, 养老, 补贴, 证明). Its
key is 编号 (given in the spreadsheet or the API, else derived from the question), unique within the
township, so importing the same spreadsheet again updates entries instead of duplicating them.

The matcher (faq.Matcher) is built per township and cached per process; every change bumps the
township's revision (one small document), and the next question rebuilds the matcher when the
revision it was built from is stale — so several processes (gunicorn workers, replicas) agree.
"""
from __future__ import annotations

import re
import threading

from shared.clock import Clock, iso
from shared.domain.ids import short_hash
from shared.domain.sheet_table import Table, fold, read_table
from shared.domain.spreadsheet import ImportRejected, SpreadsheetError, StalePreview, cell_text, content_base
from shared.storage import Index

from .faq import Match, Matcher

KB_INDEXES = [Index.on("township"), Index.on("township", "code")]
CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
HEADERS = {"编号": "code", "问题": "question", "答案": "answer", "关键词": "keywords", "类别": "category"}
REQUIRED = ("问题", "答案")
COMPARED = ("question", "answer", "keywords", "category", "active")
MAX_ENTRIES = 2000
_SPLIT = re.compile(r"[、,，;；/|\s]+")


class KbError(ImportRejected):
    """A spreadsheet that cannot be imported: the whole file is refused, every problem listed."""

    def __init__(self, errors: list[dict]):
        super().__init__(errors[0]["message"] if errors else "知识库文件有误", errors)


def split_keywords(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    else:
        parts = _SPLIT.split(str(value))
    return list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))[:30]


def entry_id(township: str, code: str) -> str:
    return f"{township}.{code}"


def code_for(question: str) -> str:
    return "q" + short_hash(question.strip(), length=8)


class KnowledgeBase:
    def __init__(self, store, clock: Clock):
        self.entries = store.collection("kb_entries", KB_INDEXES)
        self.meta = store.collection("kb_meta")
        self.clock = clock
        self._matchers: dict[str, tuple[int, Matcher]] = {}
        self._lock = threading.Lock()

    # -- entries ----------------------------------------------------------------------------------
    def list(self, township: str) -> list[dict]:
        return sorted(self.entries.find({"township": township}, limit=MAX_ENTRIES), key=lambda e: e["code"])

    def get(self, township: str, code: str) -> dict | None:
        doc = self.entries.get(entry_id(township, code))
        return doc if doc and doc["township"] == township else None

    def put(self, township: str, body: dict, actor: str, code: str | None = None) -> tuple[dict, str]:
        """Creates or replaces an entry; returns (entry, "created" | "updated" | "unchanged")."""
        code = code or body.get("code") or code_for(body["question"])
        current = self.get(township, code)
        doc = self._doc(township, code, body, actor, current)
        if _same(current, doc):
            return current, "unchanged"
        stored = self.entries.upsert(doc)
        self._bump(township)
        return stored, "updated" if current else "created"

    def _doc(self, township: str, code: str, body: dict, actor: str, current: dict | None) -> dict:
        now = iso(self.clock.now())
        return {"_id": entry_id(township, code), "township": township, "code": code,
                "question": body["question"].strip(), "answer": body["answer"].strip(),
                "keywords": split_keywords(body.get("keywords")), "category": (body.get("category") or "").strip() or None,
                "active": body.get("active", True), "created_at": (current or {}).get("created_at", now),
                "updated_at": now, "updated_by": actor}

    def delete(self, township: str, code: str) -> bool:
        if self.get(township, code) is None:
            return False
        self.entries.delete(entry_id(township, code))
        self._bump(township)
        return True

    # -- spreadsheet import -----------------------------------------------------------------------
    def preview_file(self, township: str, data: bytes, filename: str, replace: bool = False) -> dict:
        """The dry run: entries the file would add, change and (with replace) remove; nothing written."""
        rows, notices = read_kb(data, filename)
        current = {e["code"]: e for e in self.list(township)}
        added, changed, unchanged = [], [], 0
        for row in rows:
            before = current.get(row["code"])
            doc = self._doc(township, row["code"], row, "", before)
            if before is None:
                added.append({"code": row["code"], "question": doc["question"]})
            elif _same(before, doc):
                unchanged += 1
            else:
                changed.append({"code": row["code"], "question": doc["question"],
                                "fields": [k for k in COMPARED if before.get(k) != doc[k]]})
        kept = {row["code"] for row in rows}
        removed = [{"code": c, "question": e["question"]} for c, e in current.items() if replace and c not in kept]
        changes = {"added": added, "changed": changed, "removed": removed}
        return {"dry_run": True, "township": township, "changed": bool(added or changed or removed),
                "base": self.base(township),
                "summary": {**{k: len(v) for k, v in changes.items()}, "unchanged": unchanged},
                "changes": changes, "notices": notices}

    def base(self, township: str) -> str:
        """A token for the entries as they stand (a preview returns it; see import_file)."""
        return content_base(sorted([e["code"], *(e.get(k) for k in COMPARED)] for e in self.list(township)))

    def import_file(self, township: str, data: bytes, filename: str, actor: str, replace: bool = False,
                    base: str | None = None) -> dict:
        """Entries created, updated or (replace) removed; with a preview's ``base``, refuses
        (StalePreview) if the knowledge base changed since that preview."""
        rows = read_sheet(data, filename)
        if base is not None and base != self.base(township):
            raise StalePreview()
        counts = {"created": 0, "updated": 0, "unchanged": 0, "removed": 0}
        kept = set()
        for row in rows:
            _, status = self.put(township, row, actor, code=row["code"])
            counts[status] += 1
            kept.add(row["code"])
        if replace:
            for entry in self.list(township):
                if entry["code"] not in kept:
                    self.delete(township, entry["code"])
                    counts["removed"] += 1
        return {"township": township, "total": len(rows), **counts}

    # -- matching ---------------------------------------------------------------------------------
    def revision(self, township: str) -> int:
        doc = self.meta.get(township)
        return doc["revision"] if doc else 0

    def _bump(self, township: str) -> None:
        doc = self.meta.get(township) or {"_id": township, "revision": 0}
        doc["revision"] = doc.get("revision", 0) + 1
        self.meta.upsert(doc)

    def matcher(self, township: str) -> Matcher | None:
        revision = self.revision(township)
        if revision == 0:
            return None  # no knowledge base: nothing to answer with (and jieba is never loaded)
        cached = self._matchers.get(township)
        if cached and cached[0] == revision:
            return cached[1]
        with self._lock:
            cached = self._matchers.get(township)
            if cached and cached[0] == revision:
                return cached[1]
            entries = [e for e in self.list(township) if e.get("active", True)]
            matcher = Matcher(entries)
            self._matchers[township] = (revision, matcher)
            return matcher

    def warm(self) -> int:
        """Builds the matcher of every township with a knowledge base (loading jieba's dictionary
        once): called at start-up, after the fork, so no resident's first report waits for it."""
        townships = [doc["_id"] for doc in self.meta.find() if doc.get("revision")]
        for township in townships:
            self.matcher(township)
        return len(townships)

    def match(self, township: str, text: str) -> tuple[Match | None, dict | None]:
        matcher = self.matcher(township)
        if matcher is None:
            return None, None
        found = matcher.match(text)
        entry = self.entries.get(found.entry_id) if found.entry_id else None
        if found.entry_id and entry is None:  # deleted since the matcher was built
            return found, None
        return found, entry


# -- reading a spreadsheet ------------------------------------------------------------------------
def _cell(value) -> str:
    # Inner runs of spaces (and the ideographic space) collapse too: questions are matched as typed.
    return " ".join(cell_text(value).replace("\u3000", " ").split())


def _same(current: dict | None, doc: dict) -> bool:
    return bool(current) and all(current.get(k) == doc[k] for k in COMPARED)


def read_sheet(data: bytes, filename: str) -> list[dict]:
    """Every row as an entry body; KbError listing every problem (row numbers as in Excel)."""
    return read_kb(data, filename)[0]


def read_kb(data: bytes, filename: str) -> tuple[list[dict], list[dict]]:
    """The entries, and the reader's notices (header row, rows set aside, hidden rows and columns).
    The sheet may be kept as offices keep it: a title row above the header, merged cells, notes at the end."""
    if not data:
        raise KbError([_error(1, None, "文件为空")])
    try:
        table = read_table(data, filename, HEADERS)
        where = _kb_columns(table)
        rows, errors = _kb_rows(table, where)
    except SpreadsheetError as exc:
        raise KbError([_error(1, None, str(exc))]) from None
    if len(rows) > MAX_ENTRIES:
        errors.append(_error(table.header_row, None, f"一次最多导入{MAX_ENTRIES}条"))
    if not rows and not errors:
        errors.append(_error(table.header_row + 1, None, "文件中没有问题"))
    if errors:
        raise KbError(errors)
    return rows, table.notices()


def _error(row: int | None, column: str | None, message: str, cell: str | None = None) -> dict:
    return {"row": row, "column": column, "cell": cell, "message": message}


def _kb_columns(table: Table) -> dict[str, int]:
    if table.header_row is None:
        raise KbError([_error(1, None, "文件为空")])
    header = [fold(_cell(v)) for v in table.header]
    missing = [h for h in REQUIRED if h not in header]
    if missing:
        at = table.header_row
        where = f"（按第{at}行作为表头读取）" if at != 1 else ""
        raise KbError([_error(at, h, f"缺少表头“{h}”（需要：问题、答案，可选：关键词、类别、编号）{where}")
                       for h in missing])
    return {HEADERS[h]: i for i, h in enumerate(header) if h in HEADERS}


def _kb_rows(table: Table, where: dict[str, int]) -> tuple[list[dict], list[dict]]:
    rows, seen, errors = [], {}, []
    labels = {"question": "问题", "answer": "答案", "code": "编号", "category": "类别"}

    def add(number: int, key: str, message: str) -> None:
        errors.append(_error(number, labels[key], message, table.cell(number, where.get(key))))

    for number, cells in table.rows():
        values = {key: _cell(cells[i]) if i < len(cells) else "" for key, i in where.items()}
        if not any(values.values()):
            continue  # a blank row
        for key, label, low, high in (("question", "问题", 2, 200), ("answer", "答案", 2, 2000)):
            if not values.get(key):
                add(number, key, f"“{label}”不能为空")
            elif not low <= len(values[key]) <= high:
                add(number, key, f"“{label}”长度应为{low}–{high}个字")
        code = values.get("code") or (code_for(values["question"]) if values.get("question") else "")
        if values.get("code") and not CODE.match(values["code"]):
            add(number, "code", "编号只能包含字母、数字、-和_，最长32位")
        elif code and code in seen:
            add(number, "code" if values.get("code") else "question", f"与第{seen[code]}行重复")
        seen.setdefault(code, number)
        if len(values.get("category") or "") > 20:
            add(number, "category", "“类别”最长20个字")
        rows.append({"code": code, "question": values.get("question", ""), "answer": values.get("answer", ""),
                     "keywords": split_keywords(values.get("keywords")), "category": values.get("category") or None})
    return rows, errors
