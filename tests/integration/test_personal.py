"""Phone numbers travel sealed inside events: the broker, its dead-letter queues and any copy of a
message hold ciphertext; producers and consumers see clear text."""
from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timezone

import pika
import pytest
from marshmallow import ValidationError

from shared import personal
from shared.config import Settings
from shared.events import load_event, make_event
from shared.messaging.consume import EventWorker
from shared.messaging.publish import PikaPublisher
from shared.messaging.topology import Names, declare_amqp, delete_amqp
from shared.domain.phones import FULL_NUMBER
from tests.support.runtime import SECRET

AT = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def sealing():
    personal.configure(SECRET)
    yield
    personal.configure(SECRET)


def submitted(phone="13912345678"):
    return make_event("report.submitted", "430382100", {
        "report_id": "r" * 32, "tracking_no": "ABCD2345", "category": "road", "tier": None,
        "description": "路面塌陷", "channel": "phone", "reporter_phone": phone,
        "submitted_at": "2026-11-02T01:00:00.000000Z"}, at=AT, correlation_id="r" * 32)


def test_a_dead_lettered_message_holds_no_phone_number(amqp_url):
    names = Names("t" + uuid.uuid4().hex[:10])
    subs = {"beta": ("report.submitted",)}
    declare_amqp(amqp_url, names, max_deliveries=1, subscriptions=subs)
    try:
        settings = Settings(amqp_url=amqp_url, namespace=names.namespace, max_deliveries=1)

        def always_fails(event):
            assert event["payload"]["reporter_phone"] == "13912345678"  # the handler sees clear text
            raise RuntimeError("boom")

        worker = EventWorker(settings, "beta", {"report.submitted": always_fails})
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        assert worker.attached.wait(10)
        PikaPublisher(amqp_url, names.exchange).publish([submitted()])
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        ch = conn.channel()
        body = None
        deadline = time.monotonic() + 20
        while body is None and time.monotonic() < deadline:
            method, _, data = ch.basic_get(names.dead_queue("beta"), auto_ack=True)
            body = data if method else None
            time.sleep(0.1)
        conn.close()
        worker.should_stop = True
        thread.join(10)
        assert body is not None, "the failing message was not dead-lettered"
        assert json.loads(body)["payload"]["reporter_phone"].startswith("sealed:v1:")
        assert not FULL_NUMBER.search(body.decode())
    finally:
        delete_amqp(amqp_url, names, subscriptions=subs)
