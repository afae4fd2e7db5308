"""Rate-limit digests: past the limit, the window's first excess message carries the others, sent
once as one digest when the window ends."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from shared.clock import iso
from shared.storage import VersionConflict

from .deliveries import MAX_CAS
from .templates import render, sms_length

log = logging.getLogger(__name__)

DIGEST_KEY = "notify.digest:recipient"


class Digests:
    """Part of NotifyService (services/notify/service.py), which holds the stores, channels and settings."""

    def _merge(self, doc: dict, counter_id: str, window_end: datetime) -> dict | None:
        """Past the limit: the window's first excess message becomes the digest's carrier, due at the
        window's end; later ones are folded into it and never sent on their own. `doc` is claimed."""
        doc = self._cas(doc, status="merged", counted=True, hold_reason=None, due_at=None)
        if doc is None:
            return None
        item = {"delivery_id": doc["_id"], "tracking_no": doc.get("tracking_no"), "template_key": doc["template_key"],
                "case_id": doc.get("case_id")}
        for _ in range(MAX_CAS):
            counter = self.counters.get(counter_id)
            if counter is None:  # the window's counter expired meanwhile: try again in the new window
                return self._process(self._update(doc["_id"], status="queued", counted=False))
            carrier_id = counter.get("carrier")
            carrier = self.deliveries.get(carrier_id) if carrier_id and carrier_id != doc["_id"] else None
            if carrier and carrier["status"] == "queued" and carrier.get("hold_reason") == "rate_limit":
                if not any(m["delivery_id"] == doc["_id"] for m in carrier.get("merged", [])):
                    if self._cas(carrier, merged=carrier.get("merged", []) + [item]) is None:
                        continue  # changed, or claimed by the sweeper: look again
                log.info("notify rate limit: delivery=%s merged into %s", doc["_id"], carrier["_id"])
                return self._update(doc["_id"], merged_into=carrier["_id"])
            try:
                self.counters.replace({**counter, "carrier": doc["_id"]}, counter["version"])
            except VersionConflict:
                continue
            due = window_end
            quiet = None if doc.get("urgent") else self._quiet_until(window_end, doc)
            if quiet:
                due = max(due, quiet)
            log.info("notify rate limit: delivery=%s carries the digest due %s", doc["_id"], iso(due))
            return self._update(doc["_id"], status="queued", hold_reason="rate_limit", due_at=iso(due), merged=[],
                                merged_into=None)
        raise VersionConflict(counter_id)

    def _fire_digest(self, doc: dict, now: datetime) -> dict:
        """The carrier's time has come: it counts in the new window and, when messages were folded
        into it, its text becomes the digest."""
        start, end = self._window(now)
        self._take(f"rate:{doc['recipient_id']}:{start}", 1, 0, end + timedelta(seconds=self.settings.rate_window),
                   force=True)
        merged = doc.get("merged") or []
        if not merged:
            return {**doc, "hold_reason": None}
        numbers = [n for n in dict.fromkeys([doc.get("tracking_no")] + [m.get("tracking_no") for m in merged]) if n]
        params = {"name": doc["params"].get("name", ""), "count": str(1 + len(merged)),
                  "minutes": str(max(1, self.settings.rate_window // 60)), "tracking_nos": ""}
        overrides = self._overrides(doc["township"])
        text = None
        for k in range(len(numbers), 0, -1):
            listed = "、".join(numbers[:k]) + ("等" if k < len(numbers) else "")
            candidate = render(DIGEST_KEY, {**params, "tracking_nos": listed}, signature=self.settings.signature,
                               overrides=overrides, limit=10_000)
            text = candidate
            if len(candidate) <= 70:
                break
        params["tracking_nos"] = "、".join(numbers)
        length, segments = sms_length(text)
        return {**doc, "hold_reason": None, "template_key": DIGEST_KEY, "params": params, "text": text,
                "length": length, "segments": segments, "original_text": doc["text"],
                "original_template_key": doc["template_key"]}
