"""notify's composition root."""
from __future__ import annotations

import logging

from shared.service import Context, ServiceParts

from .api import build_blueprint
from .channels.console import ConsoleChannel
from .service import NotifyService

log = logging.getLogger(__name__)


def build(ctx: Context) -> ServiceParts:
    channels = {"console": ConsoleChannel(now=ctx.clock.now)}
    service = NotifyService(ctx.store, channels, ctx.clock)
    return ServiceParts(
        name="notify",
        blueprints=[build_blueprint(service)],
        handlers={"case.assigned": service.on_case_assigned, "org.contacts_changed": service.on_contacts_changed},
        api={"service": service},
    )
