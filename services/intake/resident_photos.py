"""Photos added to a report: by the resident, or by the lead or staff handling it; stored once by
content, at most MAX_PHOTOS per report; read by whoever may see the report. The rules on the bytes
are in photos.py.

Each photo attached to a report dispatch has (every report but one answered on the spot) is
announced with ``report.photo_added`` through the report's outbox, so the lead's and staff's case
pages (dispatch) can show it without reading intake; a report sent on later carries its photos in
``report.submitted``. A lead sees a report's photos while their post holds it (as dispatch shows a
lead only the cases their post holds); staff see the township's."""
from __future__ import annotations

from shared.aggregates import Unchanged
from shared.clock import iso
from shared.events import make_event
from shared.storage import DuplicateKey

from . import photos as photo_rules
from .loop_errors import BadInput, Conflict, Forbidden, NotVisible, TooLarge, Unsupported
from .residents import Caller


class ResidentPhotos:
    """Part of ResidentLoop (services/intake/loop.py), which holds the stores, settings and clock."""

    def add_photo(self, ref: str, caller: Caller, phone_last4: str | None, data: bytes) -> tuple[dict, dict]:
        report, (upload,) = self.add_photos(ref, caller, phone_last4, [data])
        return report, upload

    def add_photos(self, ref: str, caller: Caller, phone_last4: str | None,
                   files: list[bytes]) -> tuple[dict, list[dict]]:
        """Attaches every photo or none: each is checked, the bytes are stored, then one change of
        the report attaches them all — a report that reached MAX_PHOTOS meanwhile (another upload)
        refuses the whole set. Returns the report and each file's upload, in the order sent (a photo
        already attached is answered with its upload, not added twice)."""
        report, by = self._uploader(ref, caller, phone_last4)
        kinds = [self._checked(data) for data in files]
        now = self.clock.now()
        pids = [photo_rules.photo_id(report["_id"], data) for data in files]
        uploads = [{"id": pid, "content_type": kind, "size": len(data), "by": by, "at": iso(now),
                    "url": photo_rules.photo_path(pid)} for pid, data, kind in zip(pids, files, kinds)]
        kept = {u["id"]: u for u in report.get("uploads", [])}
        fresh: dict[str, tuple[dict, bytes]] = {}   # by id: a file sent twice is stored and added once
        for upload, data in zip(uploads, files):
            if upload["id"] not in kept:
                fresh.setdefault(upload["id"], (upload, data))
        if len(kept) + len(fresh) > photo_rules.MAX_PHOTOS:
            raise Conflict(f"每条诉求最多{photo_rules.MAX_PHOTOS}张照片")
        if not fresh:
            return report, [kept[pid] for pid in pids]
        for upload, data in fresh.values():
            self._store(report, upload, data)
        new = [upload for upload, _ in fresh.values()]
        who = "resident" if caller.kind in ("resident", "app") else caller.kind

        def attach(doc: dict):
            there = {u["id"] for u in doc.get("uploads", [])}
            adding = [u for u in new if u["id"] not in there]
            if not adding:
                raise Unchanged
            if len(there) + len(adding) > photo_rules.MAX_PHOTOS:
                raise Conflict(f"每条诉求最多{photo_rules.MAX_PHOTOS}张照片")
            doc.setdefault("uploads", []).extend(adding)
            doc["updated_at"] = iso(now)
            return [event for upload in adding for event in _added(doc, upload, who, now)]

        stored = self.reports.mutate(report["_id"], attach)
        by_id = {u["id"]: u for u in stored.get("uploads", [])}
        return stored, [by_id[pid] for pid in pids]

    def _uploader(self, ref: str, caller: Caller, phone_last4: str | None) -> tuple[dict, str]:
        """The report the caller may add photos to, and the name recorded as who added them."""
        if caller.kind in ("resident", "app"):
            return self.resident_report(ref, caller, phone_last4), "resident"
        if caller.kind in ("staff", "lead"):
            report = self.find(ref)
            if report is None or not caller.sees(report["township"]):
                raise NotVisible("未找到该诉求")
            if caller.kind == "lead" and not _holds(report, caller):
                raise Forbidden("只有经办该诉求的三长可以上传照片")
            return report, caller.name
        raise Forbidden("无权上传照片")

    @staticmethod
    def _checked(data: bytes) -> str:
        """The photo's content type, from its first bytes; BadInput & co. naming ``file`` if not."""
        if len(data) > photo_rules.MAX_BYTES:
            raise TooLarge(f"照片不能超过{photo_rules.MAX_BYTES // (1024 * 1024)}MB", field="file")
        if not data:
            raise BadInput("缺少照片文件", field="file")
        content_type = photo_rules.sniff(data)
        if content_type is None:
            raise Unsupported("只接受JPEG、PNG或WebP格式的照片", field="file")
        return content_type

    def _store(self, report: dict, upload: dict, data: bytes) -> None:
        """The bytes, by content: stored before the report names them, so a named photo is there."""
        try:
            self.blobs.put(upload["id"], data, {"township": report["township"], "report_id": report["_id"],
                                                "content_type": upload["content_type"], "size": upload["size"],
                                                "by": upload["by"], "at": upload["at"]})
        except DuplicateKey:
            pass  # stored by an upload whose response was lost

    def photo(self, pid: str, caller: Caller | None):
        blob = self.blobs.get(pid)
        if blob is None or caller is None:
            raise NotVisible("未找到该照片")
        township = blob.meta.get("township")
        if caller.kind == "resident":
            if caller.report_id != blob.meta.get("report_id"):
                raise NotVisible("未找到该照片")
        elif caller.kind not in ("app", "staff", "lead") or not caller.sees(township):
            raise NotVisible("未找到该照片")
        elif caller.kind == "lead" and not _holds(self.reports.get(blob.meta.get("report_id")), caller):
            raise NotVisible("未找到该照片")
        return blob


def _holds(report: dict | None, caller: Caller) -> bool:
    """The lead's post holds the report's case now (or resolved it)."""
    handler = (report or {}).get("handler") or {}
    return bool(caller.principal.unit_id) and handler.get("unit_id") == caller.principal.unit_id


def _added(report: dict, upload: dict, by: str, now) -> list[dict]:
    if report.get("status") == "answered":
        return []   # no case to show it on; report.submitted carries it if the resident sends it on
    return [make_event("report.photo_added", report["township"], {
        "report_id": report["_id"], "tracking_no": report["tracking_no"], "case_id": report.get("case_id"),
        "photo_id": upload["id"], "url": upload["url"], "content_type": upload["content_type"], "by": by,
        "added_at": upload["at"]}, at=now, correlation_id=report["_id"])]
