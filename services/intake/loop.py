"""The resident's loop on intake's side: instant answers, "didn't answer me", likely duplicates and
following, ratings and follow-up calls, photos.

Choices (see also services/dispatch/resident_loop.py for dispatch's half):

- **Instant answers open no case.** A confident match of the township's knowledge base stores the
  report as ``answered`` (tier ``instant``) with the answer and emits nothing: no report.submitted,
  so dispatch never sees it and no lead is disturbed. "This didn't answer me"
  (POST /reports/<id>/not-answered, by the resident) turns it into a ``general`` report and emits
  report.submitted then, with tier "general".
- **Duplicates are suggested, never merged by themselves.** The 201 response lists likely
  duplicates; the resident may follow one (POST /reports/<id>/follow): intake links the report at
  once (its view shows the followed report's progress) and emits report.followed; dispatch closes
  the case it had opened for the report as ``merged`` and emits case.merged naming every report
  that now follows the canonical case (``linked_report_ids``). Staff merge cases on dispatch
  (POST /cases/<id>/merge); the same case.merged reaches intake. From then on intake folds each
  event of the canonical case into every linked report's view too.
- **Ratings**: one per resolution of the case (a case reopened and resolved again is rated again),
  by the resident who reported it (or who follows it). report.rated carries the resolution number
  and who resolved it; dispatch reopens on 不满意 (once at the level that resolved it, then the
  township rules). Each resolution asks for a rating (report.rating_requested, with the township's
  rating link) and sets ``rating_due``; a DueSweeper turns an unanswered one into a follow-up call
  (回访) for the township's staff, completed with an outcome (followup.completed). A satisfied or
  unsatisfied outcome is recorded as the resident's rating (source "followup").

One module per feature, composed into ``ResidentLoop`` here: ``instant_answers``, ``following``
(duplicates, follow, merge), ``ratings``, ``followups`` (回访), ``resident_photos``,
``resident_contact`` (回电); the refusals are in ``loop_errors``.
"""
from __future__ import annotations

from datetime import datetime

from shared.aggregates import Aggregates, NotFound
from shared.clock import Clock

from .duplicates import DuplicateFinder
from .following import FOLLOWABLE, Following
from .followups import OUTCOMES, Followups, followup_id
from .instant_answers import InstantAnswers
from .knowledge import KnowledgeBase
from .loop_errors import (NOT_FOUND, BadInput, Conflict, Forbidden, LoopError, NotVisible, TooLarge,
                          Unsupported)
from .ratings import RATING_LABELS, RATINGS, Ratings, can_rate, current_rating, resolved_by
from .resident_contact import ResidentContact
from .resident_photos import ResidentPhotos
from .residents import Caller, ResidentTokens, TownshipSettings, note_failure, proof_ok
from .supplements import Supplements

# What the HTTP edge and the schemas import from here.
__all__ = ["FOLLOWABLE", "NOT_FOUND", "OUTCOMES", "RATINGS", "RATING_LABELS", "BadInput", "Conflict", "Forbidden",
           "LoopError", "NotVisible", "ResidentLoop", "TooLarge", "Unsupported", "can_rate", "current_rating",
           "followup_id", "resolved_by"]


class ResidentLoop(InstantAnswers, Following, Ratings, Followups, ResidentPhotos, ResidentContact, Supplements):
    def __init__(self, reports: Aggregates, followups: Aggregates, kb: KnowledgeBase, settings: TownshipSettings,
                 tokens: ResidentTokens, blobs, clock: Clock):
        self.reports = reports
        self.followups = followups
        self.kb = kb
        self.settings = settings
        self.tokens = tokens
        self.blobs = blobs
        self.clock = clock
        self.finder = DuplicateFinder(reports.collection)

    def find(self, ref: str) -> dict | None:
        report = self.reports.get(ref)
        if report is None and len(ref) <= 12:
            found = self.reports.collection.find({"tracking_no": ref.upper()}, limit=1)
            report = found[0] if found else None
        return report

    def resident_report(self, ref: str, caller: Caller, phone_last4: str | None) -> dict:
        """The report, if the caller proves to be the resident who made it; 404 otherwise."""
        if caller.kind not in ("resident", "app"):
            raise Forbidden("此操作须由报事群众本人（查询码+手机号后四位，或群众凭证）进行")
        report = self.find(ref)
        if report is None or not caller.sees(report["township"]):
            raise NotVisible(NOT_FOUND)
        now = self.clock.now()
        if not proof_ok(report, caller, phone_last4, now):
            if caller.kind == "app":
                try:
                    self.reports.mutate(report["_id"], lambda d: _fail(d, now))
                except NotFound:
                    pass
            raise NotVisible(NOT_FOUND)
        return report


def _fail(doc: dict, now: datetime):
    note_failure(doc, now)
    return ()
