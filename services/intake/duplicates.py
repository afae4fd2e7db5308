"""Likely duplicates: the same broken street light reported by five households.

A report is a likely duplicate of another when both are in the same township and category, the
other is still open (not answered, resolved or itself following another report), was made within
the township's window (default 14 days), and they share a place:

- the same **address** (normalised as the roster normalises it) or the same **household**; or
- **locations** within the township's radius (default 200 m, by haversine) — found through a grid
  cell index: the location is stored with its cell (0.002° of latitude and longitude, about 220 m
  north–south), and a query asks only for the cells that can hold a point within the radius; or
- (once dispatch has placed both) the same **landing post** — the neighbourhood (or the first
  staffed post above it) dispatch assigned them to, which is how "the same 邻" is known without a
  location. This one is found when the new report's case is assigned and is shown in its view.

Every query is on indexed fields (REPORT_INDEXES in bootstrap.py). Nothing is merged: the resident
is told, and may follow the existing report; staff may merge cases.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from shared.clock import iso
from shared.domain.addresses import normalise_address
from shared.domain.phones import mask_text
from shared.domain.statuses import OPEN_STATUSES

CELL_DEG = 0.002
METRES_PER_DEG = 111_320.0
EARTH_RADIUS_M = 6_371_008.8
# A report is open while dispatch has not answered it, while its case is open, or while a department has it.
OPEN = ("submitted", *OPEN_STATUSES, "referred")
LIMIT = 5
PAGE = LIMIT + 3  # a few more than shown: one page usually holds LIMIT that can be suggested
# What a suggestion is made from: only these are read, not the stored reports whole (issue 16).
SHOWN = ("tracking_no", "description", "status", "submitted_at", "linked_to")
# ... and the location where the distance is measured (the cells' look-up): each field read is a
# json_extract parsing the stored report again (SQLite 3.40 keeps no parse between them).
NEAR_SHOWN = (*SHOWN, "location")


def address_key(address: str | None) -> str | None:
    return normalise_address(address) if address else None


def geo_cell(lat: float, lng: float) -> str:
    return f"{math.floor(lat / CELL_DEG)}:{math.floor(lng / CELL_DEG)}"


def cells_within(lat: float, lng: float, radius_m: float) -> list[str]:
    """Every grid cell that may hold a point within ``radius_m`` of (lat, lng)."""
    row, col = math.floor(lat / CELL_DEG), math.floor(lng / CELL_DEG)
    rows = math.ceil(radius_m / (CELL_DEG * METRES_PER_DEG))
    cos = max(math.cos(math.radians(min(abs(lat) + radius_m / METRES_PER_DEG, 89.9))), 0.01)
    cols = math.ceil(radius_m / (CELL_DEG * METRES_PER_DEG * cos))
    return [f"{r}:{c}" for r in range(row - rows, row + rows + 1) for c in range(col - cols, col + cols + 1)]


def haversine_m(a: dict, b: dict) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (a["lat"], a["lng"], b["lat"], b["lng"]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def suggestion(doc: dict, distance_m: float | None = None) -> dict:
    out = {"tracking_no": doc["tracking_no"], "description": mask_text(doc.get("description") or "")[:60],
           "status": doc["status"], "submitted_at": doc.get("submitted_at")}
    if distance_m is not None:
        out["distance_m"] = round(distance_m)
    return out


class DuplicateFinder:
    def __init__(self, collection):
        self.collection = collection

    def _base(self, report: dict, since: str) -> dict:
        return {"township": report["township"], "category": report["category"],
                "submitted_at": {"$gte": since}, "status": {"$in": list(OPEN)}}

    def on_arrival(self, report: dict, settings: dict, now: datetime) -> list[dict]:
        """Open reports sharing the new report's address, household or neighbourhood of 200 m."""
        since = iso(now - timedelta(days=settings["duplicate_window_days"]))
        found: dict[str, tuple[dict, float | None]] = {}
        for place in ("address_key", "household_id"):
            if report.get(place):
                for doc in self._newest(report, {**self._base(report, since), place: report[place]}):
                    found.setdefault(doc["_id"], (doc, None))
        location = report.get("location")
        if location and location.get("lat") is not None:
            radius = settings["duplicate_radius_m"]
            cells = cells_within(location["lat"], location["lng"], radius)
            for doc in self._in_cells(report, since, cells):
                distance = haversine_m(location, doc["location"])
                if distance <= radius:
                    previous = found.get(doc["_id"])
                    found[doc["_id"]] = (doc, distance if previous is None or previous[1] is None else previous[1])
        return self._pick(report, found.values())

    def _in_cells(self, report: dict, since: str, cells: list[str], limit: int = 200) -> list[dict]:
        """The newest ``limit`` open reports in any of the cells: one equality look-up per cell. With
        ``geo_cell $in`` and a sort, SQLite's planner preferred walking the whole window by date."""
        docs: list[dict] = []
        for cell in cells:
            docs += self.collection.find({**self._base(report, since), "geo_cell": cell},
                                         sort=[("submitted_at", -1)], limit=limit, fields=NEAR_SHOWN)
        docs.sort(key=lambda d: d.get("submitted_at") or "", reverse=True)
        return docs[:limit]

    def at_post(self, report: dict, unit_id: str, settings: dict, now: datetime) -> list[dict]:
        """Open reports that dispatch placed at the same post (neighbourhood), same category."""
        since = iso(now - timedelta(days=settings["duplicate_window_days"]))
        docs = self._newest(report, {**self._base(report, since), "landing_unit_id": unit_id})
        return self._pick(report, ((d, None) for d in docs))

    def _newest(self, report: dict, where: dict, most: int = 50) -> list[dict]:
        """The newest reports matching ``where`` that can be suggested, read a page at a time until
        LIMIT of them are found (or ``most`` were read): the union of each place's newest LIMIT holds
        the LIMIT newest of all. Decoding fifty stored reports per new report at a busy address was a
        tenth of intake's time (issue 16)."""
        out: list[dict] = []
        for skip in range(0, most, PAGE):
            page = self.collection.find(where, sort=[("submitted_at", -1)], limit=PAGE, skip=skip, fields=SHOWN)
            out += [d for d in page if d["_id"] != report["_id"] and not d.get("linked_to")]
            if len(out) >= LIMIT or len(page) < PAGE:
                break
        return out

    @staticmethod
    def _pick(report: dict, candidates) -> list[dict]:
        out = []
        for doc, distance in candidates:
            if doc["_id"] == report["_id"] or doc.get("linked_to"):
                continue  # itself, or a report that already follows another (suggest the one it follows)
            out.append((doc, distance))
        out.sort(key=lambda pair: pair[0].get("submitted_at") or "", reverse=True)
        return [suggestion(doc, distance) for doc, distance in out[:LIMIT]]
