"""Files a department attaches to 销号, 配合意见 and 退单 (photos of the work done, a PDF of the duty
list): stored by escalation, linked from the case like the links the API already takes.

Rules: JPEG, PNG, WebP or PDF by their first bytes (shared/domain/files.py — never the name), at most
MAX_BYTES each and MAX_FILES per action. The bytes go to the blob port (shared/storage/blobs.py:
GridFS on MongoDB, a BLOB table on SQLite) under an id derived from the case and the content, so a
retried upload lands on the blob already stored. The action then records the files' addresses
(``/dept/files/<id>``) among its attachments (退单: its evidence), and they ride in the events
(case.signed_off, case.returned, department.part_submitted) exactly as the API's links do.

Served (GET /dept/files/<id>) only to the departments with a part in the case and to the staff of
the case's township, by session cookie or bearer token; to anyone else the file does not exist.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from shared.clock import Clock, iso
from shared.domain.files import DOCUMENT_TYPES, sniff_document
from shared.domain.ids import derived_id
from shared.storage import DuplicateKey

MAX_BYTES = 10 * 1024 * 1024
MAX_FILES = 9
# The body a form or an upload with files may send: MAX_FILES files of MAX_BYTES, and the text around them.
MAX_BODY = MAX_FILES * MAX_BYTES + 256 * 1024
FIELD = "files"                 # the form's and the API's multipart field
PATH = "/dept/files/"
OWN = re.compile(r"/dept/files/[A-Za-z0-9_-]{1,80}")


class BadFiles(Exception):
    """The files break a rule: the message is shown next to the files field."""

    def __init__(self, message: str):
        super().__init__(message)
        self.field = FIELD
        self.message = message


@dataclass(frozen=True)
class Upload:
    data: bytes
    content_type: str


def check(files: list[bytes]) -> list[Upload]:
    """The uploads in order, the same content once; BadFiles names the first rule broken."""
    if len(files) > MAX_FILES:
        raise BadFiles(f"每次最多上传{MAX_FILES}个附件")
    out, seen = [], set()
    for data in files:
        if len(data) > MAX_BYTES:
            raise BadFiles(f"每个附件不能超过{MAX_BYTES // (1024 * 1024)}MB")
        kind = sniff_document(data)
        if kind is None:
            raise BadFiles("只能上传照片（JPEG、PNG、WebP）或PDF文件")
        digest = hashlib.sha256(data).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(Upload(data, kind))
    return out


def attachment_id(case_id: str, data: bytes) -> str:
    return derived_id("attachment", case_id, hashlib.sha256(data).hexdigest())


def attachment_url(blob_id: str) -> str:
    return PATH + blob_id


def is_attachment(url: str) -> bool:
    return bool(OWN.fullmatch(url))


def blob_id_of(url: str) -> str:
    return url[len(PATH):]


class Attachments:
    def __init__(self, blobs, clock: Clock):
        self.blobs = blobs
        self.clock = clock

    def store(self, doc: dict, dept: dict, actor: str, uploads: list[Upload]) -> tuple[list[str], list[str]]:
        """Stores each upload once; returns their addresses and the ids this call created (so a
        refused action can take back what it alone wrote)."""
        urls, created = [], []
        for up in uploads:
            blob_id = attachment_id(doc["_id"], up.data)
            meta = {"case_id": doc["_id"], "township": doc["township"], "department_id": dept["_id"],
                    "content_type": up.content_type, "size": len(up.data), "by": actor,
                    "at": iso(self.clock.now())}
            try:
                self.blobs.put(blob_id, up.data, meta)
                created.append(blob_id)
            except DuplicateKey:
                pass   # a retried upload: the same case and content are already stored
            urls.append(attachment_url(blob_id))
        return urls, created

    def discard(self, blob_ids: list[str]) -> None:
        for blob_id in blob_ids:
            self.blobs.delete(blob_id)

    def read(self, blob_id: str):
        return self.blobs.get(blob_id) if blob_id and len(blob_id) <= 80 else None


def file_name(blob) -> str:
    """The name a download gets: the id and the extension of its real type."""
    return f"{blob.blob_id}.{DOCUMENT_TYPES.get(blob.meta.get('content_type'), 'bin')}"
