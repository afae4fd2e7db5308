"""iso() and derived_id() spelled out for speed (issue 16) give what strftime and uuid5 give (pure)."""
from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

from shared.clock import ISO_FORMAT, iso
from shared.domain.ids import derived_id

ZONES = [timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]


def test_iso_is_strftime_s_fixed_width_utc_text_for_any_zone():
    rng = random.Random(16)
    for _ in range(2000):
        when = datetime(rng.randrange(1000, 9999), rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24),
                        rng.randrange(60), rng.randrange(60), rng.choice([0, 7, rng.randrange(10**6)]),
                        tzinfo=rng.choice(ZONES))
        assert iso(when) == when.astimezone(timezone.utc).strftime(ISO_FORMAT)
    assert iso(datetime(2026, 11, 2, 9, 0, tzinfo=ZONES[1])) == "2026-11-02T01:00:00.000000Z"


def test_derived_id_is_uuid5_of_the_joined_parts():
    rng = random.Random(5)
    for _ in range(2000):
        parts = [rng.choice(["timer", "case", "路灯", str(rng.random())]) for _ in range(rng.randrange(1, 5))]
        assert derived_id(*parts) == uuid.uuid5(uuid.NAMESPACE_URL, "sanzhang:" + "|".join(parts)).hex
