"""Helpers of the pages' browser tests: a page's first-load weight, files into a file input, and a
noisy photo too large to upload unshrunk."""
from __future__ import annotations

import os
import struct
import zlib

WEIGHT = ("(() => { const n = performance.getEntriesByType('navigation')[0];"
          " const r = performance.getEntriesByType('resource');"
          " return {document: n.transferSize, resources: r.map(e => [e.name, e.transferSize]),"
          " total: n.transferSize + r.reduce((s, e) => s + e.transferSize, 0)}; })()")


def first_load(browser, url: str) -> dict:
    """Opens ``url`` with the cache off (a first visit) and returns what it transferred, in bytes."""
    browser.call("Network.enable")
    browser.call("Network.setCacheDisabled", {"cacheDisabled": True})
    try:
        browser.goto(url)
        browser.wait("performance.getEntriesByType('navigation')[0].transferSize > 0")
        return browser.eval(WEIGHT)
    finally:
        browser.call("Network.setCacheDisabled", {"cacheDisabled": False})
        browser.call("Network.disable")
        browser.events.clear()


def set_files(browser, selector: str, paths: list[str]) -> None:
    root = browser.call("DOM.getDocument")["root"]["nodeId"]
    node = browser.call("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    browser.call("DOM.setFileInputFiles", {"nodeId": node, "files": paths})


def noisy_png(path: str, width: int = 2200, height: int = 1650) -> int:
    """A photo-sized PNG of random pixels (incompressible: larger than the 5 MB upload limit)."""
    raw = b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))
    with open(path, "wb") as fh:
        fh.write(png)
    return len(png)
