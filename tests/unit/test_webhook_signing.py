"""Webhook signing per the specification's example, the reference verifier, and the retry back-off (pure)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from services.escalation.webhooks import WebhookVerificationError, backoff, sign, verify


SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def spec_headers(signature=SPEC_SIGNATURE, ts=SPEC_TS):
    return {"webhook-id": SPEC_ID, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_signature_matches_the_specifications_example():
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    assert verify(SPEC_SECRET, spec_headers(), SPEC_BODY, now=SPEC_TS + 10) == {"test": 2432232314}
    # Several signatures (a receiver mid-rotation): any v1 match passes; other versions are skipped.
    many = f"v1a,abc v1,{'A' * 44} {SPEC_SIGNATURE}"
    assert verify(SPEC_SECRET, spec_headers(many), SPEC_BODY.encode(), now=SPEC_TS)


@pytest.mark.parametrize("body,headers,now,reason", [
    ('{"test": 2432232315}', spec_headers(), SPEC_TS, "no matching signature"),       # tampered body
    (SPEC_BODY, spec_headers(), SPEC_TS + 301, "too old"),                           # older than 5 minutes
    (SPEC_BODY, spec_headers(), SPEC_TS - 301, "too new"),
    (SPEC_BODY, spec_headers(ts=SPEC_TS + 1), SPEC_TS, "no matching signature"),     # timestamp changed
    (SPEC_BODY, {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TS)}, SPEC_TS, "missing"),
    (SPEC_BODY, spec_headers(ts="yesterday"), SPEC_TS, "bad webhook-timestamp"),
])
def test_the_reference_verifier_refuses(body, headers, now, reason):
    with pytest.raises(WebhookVerificationError, match=reason):
        verify(SPEC_SECRET, headers, body, now=now)
    with pytest.raises(WebhookVerificationError):
        verify("whsec_" + "QUJD" * 8, spec_headers(), SPEC_BODY, now=SPEC_TS)   # another secret


def test_backoff_doubles_and_is_capped():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert backoff(30) == timedelta(hours=6)
