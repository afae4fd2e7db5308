"""Cities, their departments, and the departments' machine credentials.

A department (市直部门) belongs to a city (6-digit code, e.g. 430382) and serves every township
whose code starts with it. Its systems authenticate with ``Authorization: Bearer <key_id>.<secret>``:
the secret is shown once and stored only as a salted scrypt hash. A department may hold two active
credentials at once (rotation: issue the new one, switch, revoke the old); a revoked credential
stops working at the next request, because every request reads the credential's record.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import unicodedata
from collections import OrderedDict

from shared.auth import Principal
from shared.clock import Clock, iso, parse_iso
from shared.storage import DuplicateKey, Index, Store, VersionConflict

log = logging.getLogger(__name__)

MAX_ACTIVE_CREDENTIALS = 2
KEY_ID = re.compile(r"^dk_[0-9a-f]{16}$")
DEPARTMENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
# scrypt's cost: ~16 MiB and tens of milliseconds per check. Secrets are 256-bit random, so the hash
# guards a stolen database rather than weak passwords; verified tokens are remembered (by a SHA-256
# of the token, never the token) so a busy integration does not pay it on every request.
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
_LAST_USED_EVERY = 3600  # seconds: how stale "last used" may be before a request rewrites it


class DirectoryError(Exception):
    """A request the directory refuses; ``code`` is machine-readable, the message is for people."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def name_key(name: str) -> str:
    """Full-width folded, spaces removed: 市住建局 and 市住建局　 (ideographic space) are one name."""
    return "".join(unicodedata.normalize("NFKC", name or "").split())


def hash_secret(secret: str) -> dict:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **SCRYPT)
    return {"algo": "scrypt", **SCRYPT, "salt": base64.b64encode(salt).decode(),
            "hash": base64.b64encode(digest).decode()}


def check_secret(secret: str, stored: dict) -> bool:
    if stored.get("algo") != "scrypt":
        return False
    digest = hashlib.scrypt(secret.encode(), salt=base64.b64decode(stored["salt"]), dklen=32,
                            n=stored["n"], r=stored["r"], p=stored["p"])
    return hmac.compare_digest(digest, base64.b64decode(stored["hash"]))


def new_webhook_secret() -> str:
    """Standard Webhooks' form: whsec_ and base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class Directory:
    def __init__(self, store: Store, clock: Clock):
        self.clock = clock
        self.cities = store.collection("cities")
        self.departments = store.collection("departments", [Index.on("city"),
                                                             Index.on("city", "name_key", unique=True)])
        self.credentials = store.collection("credentials", [Index.on("department_id")])
        self._verified: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    # -- cities ---------------------------------------------------------------------------------
    def city(self, code: str) -> dict | None:
        return self.cities.get(code)

    def put_city(self, code: str, body: dict, actor: str) -> dict:
        current = self.cities.get(code) or {}
        doc = {"_id": code, "city": code, "name": body.get("name", current.get("name") or code),
               "supervisor": body.get("supervisor", current.get("supervisor")),
               "sla": body.get("sla", current.get("sla")) or None,
               "updated_at": iso(self.clock.now()), "updated_by": actor}
        return self.cities.upsert(doc)

    # -- departments ----------------------------------------------------------------------------
    def department(self, department_id: str) -> dict | None:
        return self.departments.get(department_id) if department_id else None

    def of_city(self, city: str, *, active_only: bool = False) -> list[dict]:
        docs = self.departments.find({"city": city}, sort=[("name_key", 1)])
        return [d for d in docs if d.get("active", True)] if active_only else docs

    def by_name(self, city: str, name: str) -> dict | None:
        found = self.departments.find({"city": city, "name_key": name_key(name)}, limit=1)
        return found[0] if found else None

    def lookup(self, city: str, text: str) -> dict | None:
        """A department of the city by id or by name (as spreadsheets and people write it)."""
        doc = self.department(text.strip())
        if doc and doc["city"] == city:
            return doc
        return self.by_name(city, text)

    def create_department(self, city: str, body: dict, actor: str) -> dict:
        dept_id = body.get("id") or f"{city}-{secrets.token_hex(4)}"
        now = iso(self.clock.now())
        doc = {"_id": dept_id, "city": city, "name": body["name"].strip(), "name_key": name_key(body["name"]),
               "contact": body.get("contact"), "sees_phone": bool(body.get("sees_phone", False)),
               "sla": body.get("sla") or None, "webhook": None, "active": True,
               "created_at": now, "updated_at": now, "updated_by": actor}
        if self.by_name(city, doc["name"]):
            raise DirectoryError("duplicate_name", f"本市已有名为「{doc['name']}」的部门", field="name")
        try:
            return self.departments.insert(doc)
        except DuplicateKey:
            if self.departments.get(dept_id):
                raise DirectoryError("duplicate_id", f"部门编号 {dept_id} 已被使用", field="id") from None
            raise DirectoryError("duplicate_name", f"本市已有名为「{doc['name']}」的部门", field="name") from None

    def update_department(self, dept_id: str, change, actor: str) -> dict:
        """Applies ``change(doc)`` with compare-and-set, retrying when another writer won."""
        for _ in range(20):
            current = self.departments.get(dept_id)
            if current is None:
                raise LookupError(dept_id)
            doc = dict(current)
            change(doc)
            doc["updated_at"] = iso(self.clock.now())
            doc["updated_by"] = actor
            try:
                return self.departments.replace(doc, current["version"])
            except VersionConflict:
                continue
            except DuplicateKey:
                raise DirectoryError("duplicate_name", f"本市已有名为「{doc['name']}」的部门", field="name") from None
        raise VersionConflict(f"department {dept_id} kept changing")

    def patch_department(self, dept_id: str, body: dict, actor: str) -> dict:
        def change(doc):
            if "name" in body:
                doc["name"], doc["name_key"] = body["name"].strip(), name_key(body["name"])
            for key in ("contact", "sees_phone", "active"):
                if key in body:
                    doc[key] = body[key]
            if "sla" in body:
                doc["sla"] = body["sla"] or None
        return self.update_department(dept_id, change, actor)

    def set_webhook(self, dept_id: str, url: str, enabled: bool, rotate: bool, actor: str) -> tuple[dict, str | None]:
        """Returns the department and the secret when one was made (new webhook or rotation)."""
        made: list[str] = []

        def change(doc):
            hook = dict(doc.get("webhook") or {})
            if rotate or not hook.get("secret"):
                hook["secret"] = new_webhook_secret()
                hook["secret_created_at"] = iso(self.clock.now())
                made.append(hook["secret"])
            hook.update(url=url, enabled=enabled)
            doc["webhook"] = hook
        doc = self.update_department(dept_id, change, actor)
        return doc, (made[-1] if made else None)

    def clear_webhook(self, dept_id: str, actor: str) -> dict:
        def change(doc):
            doc["webhook"] = None
        return self.update_department(dept_id, change, actor)

    # -- credentials ----------------------------------------------------------------------------
    def issue_credential(self, dept_id: str, label: str | None, actor: str) -> tuple[dict, str]:
        """A new key for the department; the token is returned once and never stored."""
        dept = self.department(dept_id)
        if dept is None:
            raise LookupError(dept_id)
        active = [c for c in self.credentials.find({"department_id": dept_id}) if not c.get("revoked_at")]
        if len(active) >= MAX_ACTIVE_CREDENTIALS:
            raise DirectoryError("credential_limit",
                                 f"每个部门最多同时有{MAX_ACTIVE_CREDENTIALS}个有效凭证，请先吊销旧凭证 "
                                 f"({', '.join(c['_id'] for c in active)})")
        key_id = "dk_" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        record = {"_id": key_id, "department_id": dept_id, "city": dept["city"], "label": label,
                  "secret": hash_secret(secret), "created_at": iso(self.clock.now()), "created_by": actor,
                  "revoked_at": None, "revoked_by": None, "last_used_at": None}
        self.credentials.insert(record)
        log.info("credential issued", extra={"department_id": dept_id, "key_id": key_id})
        return record, f"{key_id}.{secret}"

    def credentials_of(self, dept_id: str) -> list[dict]:
        return sorted(self.credentials.find({"department_id": dept_id}), key=lambda c: c["created_at"])

    def revoke_credential(self, dept_id: str, key_id: str, actor: str) -> dict:
        for _ in range(20):
            current = self.credentials.get(key_id)
            if current is None or current["department_id"] != dept_id:
                raise LookupError(key_id)
            if current.get("revoked_at"):
                return current
            doc = {**current, "revoked_at": iso(self.clock.now()), "revoked_by": actor}
            try:
                stored = self.credentials.replace(doc, current["version"])
            except VersionConflict:
                continue
            with self._lock:
                self._verified.pop(key_id, None)
            log.info("credential revoked", extra={"department_id": dept_id, "key_id": key_id})
            return stored
        raise VersionConflict(f"credential {key_id} kept changing")

    def resolve_token(self, token: str) -> Principal | None:
        """The auth resolver: ``dk_<16 hex>.<secret>`` → the department's principal, or None."""
        key_id, dot, secret = token.partition(".")
        if not dot or not KEY_ID.match(key_id) or not secret or len(secret) > 200:
            return None
        record = self.credentials.get(key_id)
        if record is None or record.get("revoked_at"):
            return None
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            known = self._verified.get(key_id)
        if known is None or not hmac.compare_digest(known, fingerprint):
            if not check_secret(secret, record["secret"]):
                return None
            with self._lock:
                self._verified[key_id] = fingerprint
                self._verified.move_to_end(key_id)
                while len(self._verified) > 1000:
                    self._verified.popitem(last=False)
        dept = self.department(record["department_id"])
        if dept is None or not dept.get("active", True):
            return None
        self._touch(record)
        return Principal(role="department", department_id=dept["_id"], name=dept["name"],
                         scopes=("credential:" + key_id,))

    def _touch(self, record: dict) -> None:
        now = self.clock.now()
        last = record.get("last_used_at")
        if last and (now - parse_iso(last)).total_seconds() < _LAST_USED_EVERY:
            return
        try:
            self.credentials.replace({**record, "last_used_at": iso(now)}, record["version"])
        except VersionConflict:
            pass  # another request wrote it, or a revocation: both are fine
