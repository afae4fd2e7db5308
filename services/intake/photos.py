"""Photos attached to a report by the resident who made it or by the township's staff and leads.

The type is read from the file's first bytes (JPEG, PNG, WebP), never from its name or the
browser's Content-Type; a photo is at most MAX_BYTES (5 MB) and a report holds at most MAX_PHOTOS.
The bytes go to the blob port (shared/storage/blobs.py: GridFS on MongoDB, a BLOB table on SQLite),
under an id derived from the report and the content, so an upload retried after a lost response
lands on the same photo. The report keeps a small list of its photos (id, type, size, who, when).

Served at GET /api/v1/photos/<id> to credentials of the report's township only (staff, leads, the
client app, the resident's own token); to anyone else it does not exist (404).
"""
from __future__ import annotations

import hashlib

from shared.domain.files import IMAGE_TYPES, sniff_image
from shared.domain.ids import derived_id

MAX_BYTES = 5 * 1024 * 1024
MAX_PHOTOS = 9
TYPES = IMAGE_TYPES
# The type rule itself lives in shared/domain/files.py (escalation's attachments use it too).
sniff = sniff_image


def photo_id(report_id: str, data: bytes) -> str:
    return derived_id("photo", report_id, hashlib.sha256(data).hexdigest())


def photo_path(pid: str) -> str:
    return f"/api/v1/photos/{pid}"
