"""File types by their first bytes (shared/domain/files.py): one rule for intake's photos and
escalation's attachments (pure)."""
from __future__ import annotations

import pytest

from services.escalation.attachments import BadFiles, attachment_id, check
from services.intake import photos
from shared.domain.files import sniff_document, sniff_image
from tests.unit.test_photo_types import WEBP, jpeg, png

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"


def test_intake_uses_the_shared_rule():
    assert photos.sniff is sniff_image and photos.TYPES == {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def test_documents_are_photos_or_pdf():
    assert [sniff_document(d) for d in (jpeg(), png(), WEBP, PDF)] == ["image/jpeg", "image/png", "image/webp",
                                                                       "application/pdf"]
    assert sniff_image(PDF) is None                       # a photo field still takes no PDF
    for other in (b"GIF89a" + b"\x00" * 20, b" %PDF-1.4", b"<svg/>", b"", b"PK\x03\x04 a .docx"):
        assert sniff_document(other) is None


def test_attachments_keep_one_copy_of_the_same_content_and_name_the_rule_broken():
    photo = jpeg()
    assert [u.content_type for u in check([photo, PDF, photo])] == ["image/jpeg", "application/pdf"]
    assert attachment_id("case-1", photo) == attachment_id("case-1", photo) != attachment_id("case-2", photo)
    for files, message in (([b"GIF89a"], "只能上传照片（JPEG、PNG、WebP）或PDF文件"),
                           ([PDF + b"\x00" * (10 * 1024 * 1024)], "每个附件不能超过10MB"),
                           ([PDF] * 10, "每次最多上传9个附件")):
        with pytest.raises(BadFiles) as exc:
            check(files)
        assert exc.value.field == "files" and exc.value.message == message
