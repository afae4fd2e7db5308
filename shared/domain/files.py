"""What kind of file an upload is, read from its first bytes (magic numbers), never from its name
or the browser's Content-Type: the one rule for every service that takes files.

- Photos (a resident's report, intake): JPEG, PNG, WebP — ``sniff_image``.
- Documents (a department's 销号, 配合意见, 退单 evidence, escalation): those photos and PDF —
  ``sniff_document``.

Each answers the content type or None; the callers keep their own size and count limits.
"""
from __future__ import annotations

IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
DOCUMENT_TYPES = {**IMAGE_TYPES, "application/pdf": "pdf"}


def sniff_image(data: bytes) -> str | None:
    """The image type by magic bytes, or None for anything else."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def sniff_document(data: bytes) -> str | None:
    """A photo's type, or application/pdf for a PDF (``%PDF-`` at the very start), or None."""
    if data[:5] == b"%PDF-":
        return "application/pdf"
    return sniff_image(data)
