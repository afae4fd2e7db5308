"""Photo types are read from the bytes (pure)."""
from __future__ import annotations

import os
import struct
import zlib

from services.intake.photos import sniff


WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + b"\x00" * 24


def jpeg(size: int = 2048) -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + os.urandom(size) + b"\xff\xd9"


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_types_are_read_from_the_bytes():
    assert sniff(png()) == "image/png" and sniff(jpeg()) == "image/jpeg" and sniff(WEBP) == "image/webp"
    for other in (b"GIF89a" + b"\x00" * 20, b"%PDF-1.7", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"", b"RIFF1234WAVE"):
        assert sniff(other) is None
