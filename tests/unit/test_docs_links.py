"""The README stays a five-minute read, and no link in the documentation points at nothing.
Pure: reads Markdown files only."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and ![alt](target); a target ends at whitespace or ")" (titles are not used here).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))   # code blocks hold examples, not links
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_readme_is_a_five_minute_read():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < 250, f"README.md has {lines} lines; move detail into docs/"


def test_every_relative_link_resolves_to_a_file():
    broken = []
    for page in PAGES:
        for target in _relative_links(page):
            path = unquote(target.split("#", 1)[0])
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_the_readme_links_every_docs_page():
    linked = {Path(unquote(t.split("#", 1)[0])).name for t in _relative_links(README)}
    pages = {p.name for p in PAGES if p.parent.name == "docs"}
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"


def test_the_link_check_sees_links():
    """Guards the guard: the pattern finds the README's links, so an empty pass means something."""
    assert len(_relative_links(README)) >= 10
