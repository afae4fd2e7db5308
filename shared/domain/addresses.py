"""Text as people type it into spreadsheets and forms, folded so equal things compare equal."""
from __future__ import annotations

import re

# Full-width ASCII and the ideographic space fold to ASCII; zero-width marks copied from web pages vanish.
_FOLD = {0x3000: " ", **{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)},
         **{c: None for c in (0x200B, 0x200C, 0x200D, 0xFEFF)}}
# translate() with a dict is slow per character; most cells have nothing to fold, and a regex says so fast.
_NEEDS_FOLD = re.compile("[\u3000\uff01-\uff5e\u200b-\u200d\ufeff]")


def normalise_address(s: str) -> str:
    """Strips, folds full-width characters to ASCII and collapses whitespace.

    Every roster text cell goes through it, not only addresses: names feed the ids, and "一组" typed
    with a full-width space must name the same group as "一组"; intake compares addresses with it
    to find duplicate reports.
    """
    if _NEEDS_FOLD.search(s):
        s = s.translate(_FOLD)
    return " ".join(s.split())
