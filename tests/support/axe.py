"""axe-core (the accessibility engine, from the npm registry) for the browser tests: found in
.cache/axe-core (installed there with npm on first use) or at SANZHANG_AXE_JS, injected into a
page over CDP and run against WCAG 2.x A and AA."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "axe-core"
VERSION = "4"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def axe_source() -> str | None:
    """axe.min.js's text, installing it with npm if needed; None when neither it nor npm is here."""
    given = os.environ.get("SANZHANG_AXE_JS")
    path = Path(given) if given else CACHE / "node_modules" / "axe-core" / "axe.min.js"
    if not path.exists() and not given and shutil.which("npm"):
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(CACHE),
                        f"axe-core@{VERSION}"], check=True, capture_output=True, timeout=300)
    return path.read_text(encoding="utf-8") if path.exists() else None


def violations(browser, source: str) -> list[dict]:
    """axe's WCAG A/AA violations on the page now open: [{id, impact, help, nodes: [selectors]}]."""
    if not browser.eval("typeof window.axe === 'object'"):
        browser.eval(source + "\n;true")
    found = browser.eval(f"axe.run(document, {{runOnly: {{type: 'tag', values: {json.dumps(TAGS)}}}}})"
                         ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, "
                         "nodes: v.nodes.map(n => n.target.join(' '))})))")
    assert isinstance(found, list), f"axe did not run: {found!r}"
    return found
