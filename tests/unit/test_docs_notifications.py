"""docs/notifications.md's "Who hears what" table names every event type notify handles and every
template it ships, so the page cannot drift from the rules again. Pure: the handler map is read
from a NotifyService built on a store that is never touched."""
from __future__ import annotations

import re
from pathlib import Path

from services.notify.service import NotifyService
from services.notify.templates import TEMPLATES

PAGE = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"


class _UntouchedStore:
    """Building the service only names its collections; reading the handler map uses none."""

    def collection(self, name, indexes=None):
        return object()


def _table() -> str:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Who hears what", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("| "))


def _events_in_first_column(table: str) -> set[str]:
    names = set()
    for line in table.splitlines():
        first = line.split("|")[1]
        names |= set(re.findall(r"[a-z_]+\.[a-z_]+", first))
    return names


def test_every_event_notify_handles_is_in_the_table():
    handled = set(NotifyService(_UntouchedStore(), {}, clock=None).handlers())
    assert handled, "notify handles no events?"
    missing = handled - _events_in_first_column(_table())
    assert not missing, f"docs/notifications.md 'Who hears what' lacks: {sorted(missing)}"


def test_the_table_names_no_event_notify_does_not_handle():
    handled = set(NotifyService(_UntouchedStore(), {}, clock=None).handlers())
    extra = _events_in_first_column(_table()) - handled
    assert not extra, f"docs/notifications.md lists events notify does not handle: {sorted(extra)}"


def test_every_template_is_named_on_the_page():
    text = PAGE.read_text(encoding="utf-8")
    missing = [key for key in TEMPLATES if f"`{key}`" not in text]
    assert not missing, f"docs/notifications.md does not name the templates {missing}"
