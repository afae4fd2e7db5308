"""A township's notification templates: its overrides of the defaults, and the view staff edit them
in (variables, a sample and its SMS length)."""
from __future__ import annotations

from shared.clock import iso

from .templates import TEMPLATES, render, sms_length, variables_for


class TemplateAdmin:
    """Part of NotifyService (services/notify/service.py), which holds the stores, channels and settings."""

    def _overrides(self, township: str) -> dict:
        doc = self.templates.get(township)
        return dict(doc.get("templates") or {}) if doc else {}

    def template_view(self, township: str) -> dict:
        from .templates import SAMPLE

        overrides = self._overrides(township)
        rows = []
        for key in sorted(TEMPLATES):
            event_type, role = key.split(":", 1)
            text = render(key, SAMPLE, signature=self.settings.signature, overrides=overrides)
            length, segments = sms_length(text)
            rows.append({"key": key, "event_type": event_type, "role": role, "default": TEMPLATES[key],
                         "override": overrides.get(key), "variables": sorted(variables_for(key)),
                         "sample": text, "length": length, "segments": segments})
        doc = self.templates.get(township) or {}
        return {"township": township, "signature": self.settings.signature, "templates": rows,
                "updated_at": doc.get("updated_at"), "updated_by": doc.get("updated_by")}

    def set_templates(self, township: str, overrides: dict, actor: str | None) -> dict:
        kept = {k: v for k, v in overrides.items() if v}
        self.templates.upsert({"_id": township, "township": township, "templates": kept,
                               "updated_at": iso(self.clock.now()), "updated_by": actor})
        return self.template_view(township)
