"""The resident token (services/intake/residents.py): issued on every accepted report, so it is
made without itsdangerous' per-call signer; it must stay exactly what the serializer makes and reads."""
from __future__ import annotations

from itsdangerous import URLSafeSerializer

from services.intake.residents import RESIDENT_PREFIX, ResidentTokens, _SALT
from shared.domain.ids import new_id

SECRET = "unit-secret-0123456789abcdef"


def test_issued_token_is_the_serializers_own_and_verifies():
    tokens = ResidentTokens(SECRET)
    serializer = URLSafeSerializer(SECRET, salt=_SALT)
    for township in ("430382100", "320281001"):
        report = {"_id": new_id(), "township": township}
        token = tokens.issue(report)
        assert token == RESIDENT_PREFIX + serializer.dumps({"r": report["_id"], "t": township})
        assert tokens.verify(token) == (report["_id"], township)


def test_a_token_signed_with_another_secret_or_altered_is_refused():
    report = {"_id": new_id(), "township": "430382100"}
    other = ResidentTokens("another-secret-0123456789abcdef").issue(report)
    assert ResidentTokens(SECRET).verify(other) is None
    token = ResidentTokens(SECRET).issue(report)
    assert ResidentTokens(SECRET).verify(token[:-2] + ("AA" if token[-2:] != "AA" else "BB")) is None
    assert ResidentTokens(None).issue(report) is None and ResidentTokens(None).verify(token) is None
