"""Photos an Open311 client uploads with a report (multipart/form-data).

FixMyStreet sends a private report's photos as files ("photo1", "photo2", …) instead of media_url,
so they are not public. Each file is checked before the report is stored (type by its first bytes,
size, count: the rules of photos.py), so a bad file refuses the whole request and nothing is written;
then each is attached to the new report as the resident's own photo.
"""
from __future__ import annotations

from . import photos as photo_rules
from .residents import Caller


class BadUpload(ValueError):
    """A file that cannot be a report's photo: (parameter name, Chinese message)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def read_uploads(files: list[tuple[str, bytes]]) -> list[bytes]:
    """The uploaded files' bytes, each checked; ``files`` is (parameter name, bytes) in the order sent."""
    files = [(name, data) for name, data in files if data]
    if len(files) > photo_rules.MAX_PHOTOS:
        raise BadUpload(files[photo_rules.MAX_PHOTOS][0], f"每条诉求最多{photo_rules.MAX_PHOTOS}张照片")
    for name, data in files:
        if len(data) > photo_rules.MAX_BYTES:
            raise BadUpload(name, f"照片不能超过{photo_rules.MAX_BYTES // (1024 * 1024)}MB")
        if photo_rules.sniff(data) is None:
            raise BadUpload(name, "只接受JPEG、PNG或WebP格式的照片")
    return [data for _, data in files]


def attach_uploads(loop, report: dict, uploads: list[bytes]) -> dict:
    """Attaches checked photos to the report just made; returns the report as stored."""
    caller = Caller("resident", township=report["township"], report_id=report["_id"])
    if uploads:
        report, _ = loop.add_photos(report["_id"], caller, None, uploads)
    return report
