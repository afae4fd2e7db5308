"""escalation's composition root. Receives cases referred beyond the township."""
from __future__ import annotations

from shared.service import Context, ServiceParts

from .referrals import Referrals


def build(ctx: Context) -> ServiceParts:
    referrals = Referrals(ctx.store, ctx.clock)
    return ServiceParts(name="escalation", handlers={"case.referred": referrals.on_case_referred},
                        api={"referrals": referrals})
