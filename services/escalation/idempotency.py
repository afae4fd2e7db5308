"""Idempotency-Key for departments' calls: a replay answers the first result and changes nothing.

Per department, a key maps to the first request's fingerprint and its response. A replay with the
same request gets the stored response (header ``Idempotent-Replayed: true``); the same key on a
different request is refused (422); a replay while the first is still running gets 409. Keys are
kept for KEEP (then a sweeper deletes them). The case change itself also remembers the key (the
referral document's ``seen`` list), so even a response lost to a crash never applies an action twice.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from shared.clock import Clock, iso, parse_iso
from shared.storage import DuplicateKey, Index, Store, VersionConflict

KEEP = timedelta(hours=24)
STALE_PENDING = timedelta(seconds=60)  # a "running" record older than this was left by a crash
MAX_KEY = 255


@dataclass
class Replay:
    status: int
    body: dict


class KeyReused(Exception):
    """The key was used for a different request."""


class InProgress(Exception):
    """The first request with this key has not finished."""


def fingerprint(method: str, path: str, body) -> str:
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{method} {path}\n{text}".encode()).hexdigest()


def record_id(scope: str, key: str) -> str:
    return hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, store: Store, clock: Clock):
        self.records = store.collection("idempotency", [Index.on("expires_at")])
        self.clock = clock

    def begin(self, scope: str, key: str, fp: str) -> Replay | None:
        """None: go ahead (the key is now held). A Replay: answer it. Raises KeyReused / InProgress."""
        now = self.clock.now()
        doc = {"_id": record_id(scope, key), "scope": scope, "fingerprint": fp, "state": "running",
               "started_at": iso(now), "expires_at": iso(now + KEEP), "status": None, "body": None}
        for _ in range(5):
            try:
                self.records.insert(doc)
                return None
            except DuplicateKey:
                pass
            found = self.records.get(doc["_id"])
            if found is None:
                continue  # expired and deleted in between
            if found["fingerprint"] != fp:
                raise KeyReused(key)
            if found["state"] == "done":
                return Replay(found["status"], found["body"])
            if now - parse_iso(found["started_at"]) < STALE_PENDING:
                raise InProgress(key)
            try:  # a crashed attempt: take the key over (the case remembers whether it was applied)
                self.records.replace({**found, "started_at": iso(now)}, found["version"])
                return None
            except VersionConflict:
                continue
        raise InProgress(key)

    def finish(self, scope: str, key: str, status: int, body: dict) -> None:
        rid = record_id(scope, key)
        found = self.records.get(rid)
        if found is None:
            return
        try:
            self.records.replace({**found, "state": "done", "status": status, "body": body}, found["version"])
        except VersionConflict:
            pass

    def abandon(self, scope: str, key: str) -> None:
        """An unexpected failure: free the key so the client's retry runs again."""
        self.records.delete(record_id(scope, key))

    def expire(self, claimed: dict) -> None:
        """DueSweeper's work on ``expires_at``."""
        self.records.delete(claimed["_id"])
