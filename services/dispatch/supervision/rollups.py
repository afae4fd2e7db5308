"""Figure rollups: per township × Beijing-time day × grouping, the counts, sums and duration histograms
every figure needs, so a year of a city's figures reads a few thousand small documents instead of a
million case rows.

Shape: one document per (source, grouping, township, day) — ``cases:township``, ``cases:village``,
``cases:category`` from the cases (by ``created_at``), ``stints:level``, ``stints:lead``,
``stints:department`` from the stints (by ``assigned_at``). Each holds one row per group with the
same counts and sums as the scan (figures.py) and, for the medians and p90s, the durations in whole
minutes as two sorted runs (``acc``, ``res``: a minute histogram written out, one entry per case,
packed as base64 of 32-bit integers, which decodes in C), from which the nearest rank is found by
bisection. Weeks,
months and quarters are sums of days.

Kept up to date by recomputing, not by adding: when a case's figure columns change (CaseFacts, right
after the write) or its stints change (the projector), the day(s) it counts in are marked
(``figure_rollup_dirty``, one small put), and a marked day is recomputed from the facts of that
township and day — about 140 rows on a city of a million cases a year — by a sweeper within a
few seconds, or by the next read of that township's figures before it answers (so a read sees every
change stored before it). The sweeper's recomputation is paced: a mark is due at the end of its
SETTLE_WINDOW_S window, so a day changing all the time (a peak) is recomputed by the sweeper once a
window, not at every poll of every worker (issue 16: a busy day's recomputation was ~6 % of a
dispatch worker's time during a burst); reads are not paced. A recomputation is idempotent, so a
redelivered or replayed event never counts twice, and a case that moved (reopened, reassigned, recategorised, paused, rated late) leaves
its old group and joins its new one in the same pass; a burst of changes to one day costs one
recomputation. The projector marks a case's days again on every case event it handles, which heals
a write whose mark was lost to a crash.

Ordering: the first grouping's document of a day is its head and carries a generation ``gen``. A
recomputation reads the head, then the facts, then writes the head with ``gen + 1`` by
compare-and-set (retrying from the read when another won), and writes the other groupings only over
an older ``gen``. So the highest generation always read the facts last, and a slow recomputation
holding older facts can never overwrite a newer one.

What the rollups do not hold: ``overdue_now`` depends on the clock; it is counted at query time from
the open cases' partial indexes (rows with a deadline), which are small.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
import base64
import sys
from array import array
from bisect import bisect_right
from functools import lru_cache
from itertools import chain, repeat
from typing import Iterable

from shared.clock import Clock, iso, parse_iso
from shared.domain.localtime import local_zone
from shared.storage import DuplicateKey, Index, Metric, Store, VersionConflict

CASE_DIMS = {"township": ["township"], "village": ["village_id"], "category": ["category"]}
STINT_DIMS = {"level": ["level"], "lead": ["lead_key", "unit_id", "level"],
              "department": ["unit_id", "unit_name", "level"]}
DIMS = {"cases": CASE_DIMS, "stints": STINT_DIMS}
SOURCE_OF = {dim: source for source, dims in DIMS.items() for dim in dims}
# A lead's row also carries the names they held the post under (the board's label).
NAMES = {"lead": ["lead_name", "unit_name"]}

# output name → fact column; every one a sum over the rows (flags 0/1, counts, seconds).
SUMS = {"accepted_on_time": "accepted_on_time", "resolved": "resolved", "rated": "rated", "satisfied": "satisfied",
        "resolved_within_2d": "resolved_within_2d", "escalations": "escalations", "breaches": "breach_count",
        "breaches_accept": "breaches_accept", "breaches_resolve": "breaches_resolve",
        "disputes_mediated": "disputes_mediated", "hazards_found": "hazards_found",
        "micro_services": "micro_services", "paused_s": "paused_s", "paused_now": "paused_now"}
STINT_SUMS = {"breached_away": "breached_away", "supervisions": "supervisions"}
HISTOGRAMS = {"acc": "time_to_accept_s", "res": "time_to_resolve_s"}
PERCENTILES = {"accept_median_s": ("acc", 500), "accept_p90_s": ("acc", 900),
               "resolve_median_s": ("res", 500), "resolve_p90_s": ("res", 900)}
# Present in the rollups once they were built from every fact stored before them (a first start, or
# an upgrade from a version without rollups); until then the figures are scanned.
BUILT = "meta:built"
# The sweeper's one-off job that builds them (a mark like a day's; claimed by one process at a time).
FIRST_BUILD = "rebuild:all"
PRECISION_S = 60  # medians and p90s are reported in whole minutes (floored), by the scan as by the rollups

# v2: a day's rows as columns (``day_rows``). A collection of its own, so a process of the version
# before, still answering during a rolling upgrade, never meets the new shape, and the new one finds
# no BUILT mark and builds its rollups once by itself (the old collection can be dropped after).
ROLLUPS = "figure_rollups_v2"
ROLLUP_INDEXES = [Index.on("township", "dim", "day"), Index.on("city", "dim", "day")]
DIRTY_INDEXES = [Index.on("due", present="due"), Index.on("township", "due", present="due"),
                 Index.on("city", "due", present="due")]
MAX_RETRIES = 50
# The sweeper recomputes a marked day at the end of the window its mark fell in: the marks of a
# window share one due time, so a busy day costs one recomputation a window whatever the traffic.
SETTLE_WINDOW_S = 5
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def sums_of(source: str) -> dict[str, str]:
    return {**SUMS, **STINT_SUMS} if source == "stints" else SUMS


def fact_fields(source: str) -> list[str]:
    keys = sorted({k for ks in DIMS[source].values() for k in ks} | set(NAMES["lead"] if source == "stints" else ()))
    return keys + sorted(set(sums_of(source).values()) | set(HISTOGRAMS.values()))


def day_of(at: str) -> str:
    """The Beijing-time date of a stored UTC time (``iso``'s text), YYYY-MM-DD."""
    return _day_of_hour(at[:13])


@lru_cache(maxsize=20_000)
def _day_of_hour(hour: str) -> str:
    # China's offset is whole hours, so the UTC hour decides the local date (a rebuild reads 10⁶ times).
    return parse_iso(hour + ":00:00.000000Z").astimezone(local_zone()).date().isoformat()


def day_bounds(day: str) -> tuple[str, str]:
    start = datetime.fromisoformat(day).replace(tzinfo=local_zone())
    return iso(start), iso(start + timedelta(days=1))


def whole_days(since: str, until: str) -> tuple[str, str] | None:
    """[first day, day after the last) when both ends are Beijing midnights, else None (ask the scan)."""
    a, b = parse_iso(since).astimezone(local_zone()), parse_iso(until).astimezone(local_zone())
    if any((t.hour, t.minute, t.second, t.microsecond) != (0, 0, 0, 0) for t in (a, b)):
        return None
    return a.date().isoformat(), b.date().isoformat()


def settle_due(now: datetime) -> datetime:
    """The end of the SETTLE_WINDOW_S window holding ``now`` (``now`` itself on a boundary)."""
    since_epoch = (now - _EPOCH) // timedelta(microseconds=1)
    return now + timedelta(microseconds=-since_epoch % (SETTLE_WINDOW_S * 1_000_000))


def floor_minute(seconds):
    return None if seconds is None else int(seconds) // PRECISION_S * PRECISION_S


def week_key(day: str) -> tuple[str]:
    """A day's week (its Monday), as the cases' ``week`` column has it."""
    d = date.fromisoformat(day)
    return ((d - timedelta(days=d.weekday())).isoformat(),)


def pack(minutes: list[int]) -> str:
    """A day's sorted minutes as text (unsigned 32-bit little-endian, base64): a city's year decodes in
    C instead of as two million JSON numbers."""
    arr = array("I", minutes)
    if sys.byteorder != "little":
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode("ascii")


def unpack(text: str) -> array:
    return _ints(base64.b64decode(text))


def percentile(runs: list, permille: int):
    return percentiles(runs, (permille,))[0]


def percentiles(runs: list, permilles: tuple[int, ...]) -> list:
    """Nearest rank, as the storage port computes it — the value at rank ceil(q·n) — over the sorted
    minute runs of many days. Few values per run (a lead's days): sort them once. Many (a township's
    or a city's days): a binary search on the value without merging, each step counting with bisect
    in every run (17 steps × days, in C, instead of touching every case)."""
    runs = [r for r in runs if r]
    n = sum(map(len, runs))
    if not n:
        return [None for _ in permilles]
    ranks = [(permille * n + 999) // 1000 for permille in permilles]
    if n < 32 * len(runs):
        values = sorted(chain.from_iterable(runs))
        return [values[rank - 1] * PRECISION_S for rank in ranks]
    return [_bisected(runs, rank) * PRECISION_S for rank in ranks]


def _bisected(runs: list, rank: int) -> int:
    lo, hi = min(r[0] for r in runs), max(r[-1] for r in runs)
    while lo < hi:  # the smallest minute m with at least `rank` values ≤ m
        mid = (lo + hi) // 2
        if sum(map(bisect_right, runs, repeat(mid))) >= rank:
            hi = mid
        else:
            lo = mid + 1
    return lo


def merge(docs: Iterable[dict], keys: list[str], regroup=None) -> list[dict]:
    """Sums the columns of many days (by their key, or by ``regroup(day)``) into figure rows.

    Column by column (see ``day_rows``): a year of a township's 邻长 is ~57,000 day rows, and adding
    one column's ints at a time costs a fraction of building and walking a dict per row."""
    groups: dict[tuple, int] = {}
    sums: dict[str, list] = {}
    names: dict[str, list] = {}
    hists: dict[str, list[list[str]]] = {h: [] for h in HISTOGRAMS}
    for doc in docs:
        cols = doc["rows"]
        before = len(groups)
        if regroup:
            at = groups.setdefault(regroup(doc["day"]), before)
            pos = [at] * len(cols["key"])
        else:
            pos = [groups.setdefault(tuple(key), len(groups)) for key in cols["key"]]
        _grow(len(groups) - before, sums, names, hists)
        for col, values in cols["sums"].items():
            total = sums.get(col) or sums.setdefault(col, [0] * len(groups))
            for p, v in zip(pos, values):
                total[p] += v
        for col, values in cols["names"].items():
            latest = names.setdefault(col, [None] * len(groups))
            for p, v in zip(pos, values):
                latest[p] = v  # names: the latest day's (docs come by day)
        for h in HISTOGRAMS:
            into = hists[h]
            for p, text in zip(pos, cols[h]):
                if text:
                    into[p].append(text)
    return [_figure_row(keys, key, p, sums, names, hists) for key, p in groups.items()]


def _grow(added: int, sums: dict, names: dict, hists: dict) -> None:
    """New groups appeared in a day: every column gets their places."""
    if added:
        for total in sums.values():
            total.extend([0] * added)
        for latest in names.values():
            latest.extend([None] * added)
        for runs in hists.values():
            runs.extend([] for _ in range(added))


def _figure_row(keys, key, p, sums, names, hists) -> dict:
    row = {**dict(zip(keys, key)), **{col: total[p] for col, total in sums.items()},
           **{col: latest[p] for col, latest in names.items()}}
    for h in HISTOGRAMS:
        wanted = [name for name, (of, _) in PERCENTILES.items() if of == h]
        row.update(zip(wanted, percentiles(_runs(hists[h][p]), tuple(PERCENTILES[name][1] for name in wanted))))
    return row


def _runs(texts: list[str]) -> list:
    """A group's packed minute runs, decoded. Few minutes per run (a lead's days): one sorted run
    from the joined bytes; many (a township's or a city's days): the runs, each sorted already."""
    raw = [base64.b64decode(t) for t in texts]
    if sum(map(len, raw)) // 4 >= 32 * len(raw):
        return [_ints(b) for b in raw]
    return [sorted(_ints(b"".join(raw)))]


def _ints(data: bytes) -> array:
    arr = array("I")
    arr.frombytes(data)
    if sys.byteorder != "little":
        arr.byteswap()
    return arr


def _empty(source: str) -> dict:
    row = {"received": 0, "accept_decided": 0, **{name: 0 for name in sums_of(source)}}
    row.update({h: [] for h in HISTOGRAMS})
    return row


def _add_fact(row: dict, fact: dict, n: int, sums: dict[str, str]) -> None:
    row["received"] += n
    if fact.get("accepted_on_time") is not None:
        row["accept_decided"] += n
    for name, col in sums.items():
        if fact.get(col) is not None:
            row[name] += fact[col] * n
    for h, col in HISTOGRAMS.items():
        if fact.get(col) is not None:
            row[h].extend([int(fact[col]) // PRECISION_S] * n)  # sorted once the day is complete


def day_rows(source: str, facts: Iterable[dict]) -> dict[str, dict]:
    """Fact rows (each with its multiplicity ``n``) → every grouping's day, as columns: ``key`` (the
    groups, sorted), ``sums`` (column → one int per group), ``names`` (a lead's labels) and the packed
    minute runs ``acc`` and ``res``."""
    sums = sums_of(source)
    out: dict[str, dict] = {dim: {} for dim in DIMS[source]}
    for fact in facts:
        for dim, keys in DIMS[source].items():
            key = tuple(fact.get(k) for k in keys)
            row = out[dim].get(key)
            if row is None:
                row = out[dim][key] = {"key": list(key), **_empty(source)}
            if dim in NAMES:
                row.update({k: fact.get(k) for k in NAMES[dim]})
            _add_fact(row, fact, fact["n"], sums)
    return {dim: _columns(dim, source, sorted(rows.values(), key=lambda r: [str(k) for k in r["key"]]))
            for dim, rows in out.items()}


def _columns(dim: str, source: str, rows: list[dict]) -> dict:
    return {"key": [r["key"] for r in rows],
            "sums": {col: [r[col] for r in rows] for col in ("received", "accept_decided", *sums_of(source))},
            "names": {col: [r[col] for r in rows] for col in NAMES.get(dim, ())},
            **{h: [pack(sorted(r[h])) for r in rows] for h in HISTOGRAMS}}


class Rollups:
    """Writes and reads the rollup documents; the facts are the cases and stints collections."""

    def __init__(self, store: Store, cases_coll, stints_coll, clock: Clock):
        self.docs = store.collection(ROLLUPS, ROLLUP_INDEXES)
        # Days changed since their last recomputation (due: when marked); swept, and settled by reads.
        self.dirty = store.collection("figure_rollup_dirty", DIRTY_INDEXES)
        self.clock = clock
        # A store without transactions (MongoDB, the test fake) stores every mark as it comes.
        self._first = getattr(store, "first_in_transaction", None) or (lambda key: True)
        self.facts = {"cases": cases_coll, "stints": stints_coll}
        self.time_field = {"cases": "created_at", "stints": "assigned_at"}
        self._built = False

    # -- the first build ----------------------------------------------------------------------------
    def ensure_built(self) -> None:
        """At start-up: if the rollups were never built from the facts (an upgrade from a version
        without them, or a new store), the figure sweeper builds them once, in the background; until
        then ``built()`` is false and FigureQueries scans, so no figure is ever read from empty rollups."""
        if self.built():
            return
        try:
            self.dirty.insert({"_id": FIRST_BUILD, "source": "all", "township": None, "city": None, "day": None,
                               "due": iso(self.clock.now())})
        except DuplicateKey:
            pass   # another process (or an earlier start) asked for it

    def built(self) -> bool:
        if not self._built:
            self._built = self.docs.get(BUILT) is not None
        return self._built

    def _set_built(self) -> None:
        self.docs.upsert({"_id": BUILT, "township": None, "city": None, "dim": "meta", "day": None,
                          "at": iso(self.clock.now())})
        self._built = True

    # -- writing ------------------------------------------------------------------------------------
    def touch_case(self, case: dict) -> None:
        """A case's own figure columns changed: the day it was received is due for recomputing."""
        self.touch_cases([case])

    def touch_cases(self, cases: Iterable[dict]) -> None:
        """Several cases changed (a sweeper's claim): each day they were received marked once."""
        days = {(case["township"], day_of(case["created_at"])) for case in cases
                if case.get("created_at") and case.get("township")}
        for township, day in sorted(days):
            self._mark("cases", township, day)

    def touch_stints(self, township: str, assigned: Iterable[str]) -> None:
        for day in sorted({day_of(at) for at in assigned if at}):
            self._mark("stints", township, day)

    def _mark(self, source: str, township: str, day: str) -> None:
        """One small put per change, whatever the day's size: a burst of a thousand reports in one
        township-day costs one recomputation, at the next read or sweep, not a thousand. Within one
        transaction (a consumer's batch) the first put of a mark is enough: a recomputation that read
        the facts before the commit finds the mark's version moved and leaves the mark (settle_one)."""
        key = f"{source}:{township}:{day}"
        if not self._first(self.dirty.name + ":" + key):
            return
        self.dirty.upsert({"_id": key, "source": source, "township": township,
                           "city": township[:6], "day": day, "due": iso(settle_due(self.clock.now()))})

    def settle(self, scope: dict) -> int:
        """Recomputes the township's (or city's) days marked since their last recomputation: a read
        always sees every change stored before it."""
        marks = self.dirty.find({**scope, "due": {"$ne": None}})
        for mark in marks:
            self.settle_one(mark)
        return len(marks)

    def settle_one(self, mark: dict) -> None:
        """Recomputes a marked day, then clears the mark unless it was marked again meanwhile (its
        version moved: that change may be newer than the facts read, so the mark stays)."""
        if mark["_id"] == FIRST_BUILD:
            self.rebuild()   # sets BUILT at its end
        else:
            self.recompute(mark["source"], mark["township"], mark["day"])
        try:
            self.dirty.replace({**mark, "due": None}, mark["version"], previous=mark)
        except VersionConflict:
            pass

    def recompute(self, source: str, township: str, day: str) -> None:
        """Recomputes one township's day of one source from the facts; idempotent (see the module doc)."""
        dims = list(DIMS[source])
        for _ in range(MAX_RETRIES):
            head = self.docs.get(self._id(dims[0], township, day))
            gen = (head or {}).get("gen", 0) + 1
            rows = day_rows(source, self._facts(source, township, day))
            try:
                self._put(self._doc(dims[0], township, day, gen, rows[dims[0]]), head)
            except (DuplicateKey, VersionConflict):
                continue  # another recomputation won the head: start again from the newer facts
            for dim in dims[1:]:
                self._write_newer(self._doc(dim, township, day, gen, rows[dim]))
            return
        raise VersionConflict(f"gave up recomputing {source} {township} {day}")

    def _facts(self, source: str, township: str, day: str) -> list[dict]:
        start, end = day_bounds(day)
        return self.facts[source].aggregate(fact_fields(source), {"n": Metric.count()},
                                            {"township": township, self.time_field[source]: {"$gte": start, "$lt": end}})

    @staticmethod
    def _id(dim: str, township: str, day: str) -> str:
        return f"{SOURCE_OF[dim]}:{dim}:{township}:{day}"

    def _doc(self, dim: str, township: str, day: str, gen: int, rows: list[dict]) -> dict:
        return {"_id": self._id(dim, township, day), "township": township, "city": township[:6], "dim": dim,
                "day": day, "gen": gen, "rows": rows}

    def _put(self, doc: dict, current: dict | None) -> None:
        if current is None:
            self.docs.insert(doc)
        else:
            self.docs.replace(doc, current["version"], previous=current)

    def _write_newer(self, doc: dict) -> None:
        for _ in range(MAX_RETRIES):
            current = self.docs.get(doc["_id"])
            if current is not None and current.get("gen", 0) >= doc["gen"]:
                return  # a later recomputation (which read newer facts) already wrote it
            try:
                self._put(dict(doc), current)
                return
            except (DuplicateKey, VersionConflict):
                continue
        raise VersionConflict(f"gave up writing {doc['_id']}")

    # -- reading ------------------------------------------------------------------------------------
    def read(self, dim: str, scope: dict, days: tuple[str, str], keys: list[str], regroup=None) -> list[dict]:
        """Rows of ``dim`` over [first day, day after the last) for a township or a city."""
        docs = self.docs.find({**scope, "dim": dim, "day": {"$gte": days[0], "$lt": days[1]}}, sort=[("day", 1)])
        return merge(docs, keys, regroup)

    # -- rebuilding ---------------------------------------------------------------------------------
    def rebuild(self, township: str | None = None) -> int:
        """Recomputes every day of every township (or one) from the facts: for data stored before
        the rollups existed, or after a change to how a figure is derived. Idempotent, and safe
        beside running writers (the same generations as ``recompute``). Returns the days written."""
        done = 0
        for source, coll in self.facts.items():
            # ``>= ""`` (every string) rather than no filter: the listing then reads an index led by
            # township instead of scanning every fact, and a fact without one is left out as before.
            towns = [township] if township else sorted(
                r["township"] for r in coll.aggregate(["township"], {"n": Metric.count()},
                                                      {"township": {"$gte": ""}}) if r["township"])
            for town in towns:
                done += self._rebuild_township(source, town)
        if township is None:
            self._set_built()   # every fact stored before this rebuild began is in; later ones marked their days
        return done

    def _rebuild_township(self, source: str, township: str) -> int:
        """One read of the township's facts (grouped by the time as well, then split by day) instead
        of one per day; a day whose head moved meanwhile is recomputed on its own."""
        dims = list(DIMS[source])
        heads = {d["day"]: d for d in self.docs.find({"township": township, "dim": dims[0]})}  # read before the facts
        field = self.time_field[source]
        by_day: dict[str, list[dict]] = {}
        for fact in self.facts[source].aggregate([field, *fact_fields(source)], {"n": Metric.count()},
                                                 {"township": township}):
            by_day.setdefault(day_of(fact[field]), []).append(fact)
        for day in sorted(set(by_day) | set(heads)):
            head = heads.get(day)
            gen = (head or {}).get("gen", 0) + 1
            rows = day_rows(source, by_day.get(day, ()))
            try:
                self._put(self._doc(dims[0], township, day, gen, rows[dims[0]]), head)
            except (DuplicateKey, VersionConflict):
                self.recompute(source, township, day)  # written since we read it: from the facts again
                continue
            for dim in dims[1:]:
                self._write_newer(self._doc(dim, township, day, gen, rows[dim]))
        return len(set(by_day) | set(heads))
