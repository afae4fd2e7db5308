"""Delivery receipts from SMS providers: matched by the provider's id or ours, applied once; a
failure receipt falls back to the next channel."""
from __future__ import annotations

from shared.clock import iso

from .deliveries import MAX_CAS

FINAL = frozenset({"delivered", "failed", "merged", "skipped"})


class Receipts:
    """Part of NotifyService (services/notify/service.py), which holds the stores, channels and settings."""

    def receipt(self, channel: str, provider_id: str | None, our_id: str | None, ok: bool, code: str | None,
                at: str | None) -> bool:
        """Applies one delivery receipt; True when it matched a delivery. Idempotent."""
        docs = []
        if provider_id:
            docs = [d for d in self.deliveries.find({"provider_message_id": provider_id}) if d["channel"] == channel]
        if not docs and our_id:
            mine = self.deliveries.get(our_id)
            docs = [mine] if mine and mine["channel"] == channel else []
        for doc in docs:
            self._apply_receipt(doc["_id"], ok, code, at)
        return bool(docs)

    def _apply_receipt(self, delivery_id: str, ok: bool, code: str | None, at: str | None) -> None:
        now = iso(self.clock.now())
        failed_now = False
        for _ in range(MAX_CAS):
            doc = self.deliveries.get(delivery_id)
            if doc is None or doc["status"] in FINAL or doc["status"] not in ("sent", "unknown", "sending"):
                return
            receipt = {"ok": ok, "code": code, "at": at, "received_at": now}
            changes = ({"status": "delivered", "delivered_at": at or now} if ok else
                       {"status": "failed", "error": code or "receipt_failed", "error_detail": "运营商回执：未送达",
                        "failed_at": now})
            if self._cas(doc, receipt=receipt, due_at=None, **changes) is not None:
                failed_now = not ok
                break
        if failed_now:
            self._fallback(self.deliveries.get(delivery_id), code or "receipt_failed")
