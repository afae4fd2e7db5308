"""Webhooks to departments: Standard Webhooks signatures (the reference verifier refuses a tampered body
and an old timestamp), delivery from a queue with retries and backoff against a local http.server."""
from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.escalation.webhooks import (MAX_ATTEMPTS, WebhookVerificationError, backoff, sign, verify)
from tests.support.runtime import ADMIN_HEADERS
from tests.support.escalation import dept_id, referred_event, setup_city

# The example in the Standard Webhooks specification (and its libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


class Receiver:
    """A department's endpoint on a local http.server: answers each POST with the next status given."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status in (301, 302, 307):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/sanzhang"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    made = []

    def make(statuses):
        receiver = Receiver(statuses)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def hooks(system):
    """The webhook sweeper, stopped in the background so a test drives each attempt."""
    sweeper = next(t for t in system.service("escalation").tasks if t.name == "department-webhooks")
    sweeper.stop()
    return sweeper


def set_webhook(web, short: str, url: str) -> str:
    resp = web.put(f"/api/v1/departments/{dept_id(short)}/webhook", json={"url": url}, headers=ADMIN_HEADERS)
    assert resp.status_code == 200, resp.json
    assert resp.json["secret"].startswith("whsec_")
    return resp.json["secret"]


def deliveries(system, short: str) -> list[dict]:
    return system.service("escalation").api["service"].webhooks.of_department(dept_id(short))


def test_delivery_is_signed_and_retried_until_the_receiver_answers(system, web, hooks, receiver_factory):
    depts = setup_city(web)
    receiver = receiver_factory([500, 200])
    secret = set_webhook(web, "zjj", receiver.url)
    # Reading the department shows the webhook but never its secret.
    assert "secret" not in web.get(f"/api/v1/departments/{dept_id('zjj')}", headers=ADMIN_HEADERS).json["webhook"]
    system.service("escalation").api["service"].on_case_referred(referred_event("c" * 32))
    assert system.drain()
    (queued,) = deliveries(system, "zjj")
    assert queued["status"] == "pending" and queued["event_type"] == "department.assigned"

    assert hooks.run_once() == 1                        # the receiver fails the first attempt
    (failed,) = deliveries(system, "zjj")
    assert failed["status"] == "pending" and failed["attempts"] == 1 and failed["last_status"] == 500
    # The flow never waited for it: the department works on the case meanwhile.
    assert web.post(f"/api/v1/department/cases/{'c' * 32}/accept", json={}, headers=depts["zjj"]).status_code == 200
    assert hooks.run_once() == 0                        # not due again yet: 10 s backoff
    system.clock.advance(seconds=10)
    assert hooks.run_once() == 1
    (done,) = deliveries(system, "zjj")
    assert done["status"] == "delivered" and done["attempts"] == 2
    # The department can see its own delivery log (and only its own).
    (log,) = web.get("/api/v1/department/deliveries", headers=depts["zjj"]).json
    assert log["status"] == "delivered" and log["attempts"] == 2 and log["last_status"] == 200
    assert web.get("/api/v1/department/deliveries", headers=depts["dx"]).json == []

    (h1, b1), (h2, b2) = receiver.requests
    assert h1["webhook-id"] == h2["webhook-id"]          # one message, retried
    assert int(h2["webhook-timestamp"]) - int(h1["webhook-timestamp"]) == 10
    assert b1 == b2
    now = system.clock.now().timestamp()
    message = verify(secret, h2, b2, now=now)
    assert message["type"] == "department.assigned"
    data = message["data"]
    assert data["case_id"] == "c" * 32 and data["role"] == "lead" and data["department_id"] == dept_id("zjj")
    assert data["due_at"] and data["accept_due"] and data["event_id"]
    assert not {"contact_phone", "supervisor_phone", "contact_name"} & set(data)   # people's contacts stay home
    # The reference verifier refuses the same request tampered with, or replayed late.
    tampered = json.loads(b2)
    tampered["data"]["due_at"] = "2030-01-01T00:00:00.000000Z"
    with pytest.raises(WebhookVerificationError):
        verify(secret, h2, json.dumps(tampered, ensure_ascii=False, separators=(",", ":"), sort_keys=True), now=now)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(secret, h2, b2, now=now + 301)
    # The other departments have no webhook: nothing queued for them.
    assert deliveries(system, "dx") == []


def test_a_receiver_that_never_answers_is_given_up_on(system, web, hooks, receiver_factory):
    setup_city(web)
    receiver = receiver_factory([503] * MAX_ATTEMPTS)
    set_webhook(web, "jtj", receiver.url)
    system.service("escalation").api["service"].on_case_referred(referred_event("d" * 32, category="road"))
    assert system.drain()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert hooks.run_once() == 1
        system.clock.advance(seconds=backoff(attempt).total_seconds())
    (gone,) = deliveries(system, "jtj")
    assert gone["status"] == "failed" and gone["attempts"] == MAX_ATTEMPTS and gone["next_due"] is None
    assert hooks.run_once() == 0


def test_redirects_are_not_followed_and_unreachable_receivers_are_retried(system, web, hooks, receiver_factory):
    setup_city(web)
    receiver = receiver_factory([302])
    set_webhook(web, "jtj", receiver.url)
    svc = system.service("escalation").api["service"]
    svc.on_case_referred(referred_event("d" * 32, category="road"))
    assert system.drain()
    hooks.run_once()
    (redirected,) = deliveries(system, "jtj")
    assert redirected["status"] == "pending" and redirected["last_status"] == 302 and len(receiver.requests) == 1
    # The receiver goes away altogether: a connection error is one more failed attempt.
    web.put(f"/api/v1/departments/{dept_id('jtj')}/webhook", json={"url": "http://127.0.0.1:1/down"},
            headers=ADMIN_HEADERS)
    system.clock.advance(seconds=10)
    hooks.run_once()
    (down,) = deliveries(system, "jtj")
    assert down["attempts"] == 2 and down["last_status"] is None and down["last_error"]
    # Removing the webhook cancels what was queued.
    assert web.delete(f"/api/v1/departments/{dept_id('jtj')}/webhook", headers=ADMIN_HEADERS).status_code == 204
    system.clock.advance(seconds=20)
    hooks.run_once()
    assert deliveries(system, "jtj")[0]["status"] == "cancelled"


def test_a_redelivered_event_is_delivered_once_and_rotation_changes_the_key(system, web, hooks, receiver_factory):
    setup_city(web)
    receiver = receiver_factory([200, 200])
    old_secret = set_webhook(web, "jtj", receiver.url)
    svc = system.service("escalation").api["service"]
    svc.on_case_referred(referred_event("d" * 32, category="road"))
    assert system.drain()
    # The event was published and queued; hand it to the webhook queue again, as a redelivery would.
    delivery = deliveries(system, "jtj")[0]
    svc.on_department_event({"id": delivery["event_id"], "type": "department.assigned", "township": "430382100",
                             "occurred_at": "2026-11-02T01:00:00.000000Z",
                             "payload": {"department_id": dept_id("jtj"), "case_id": "d" * 32}})
    assert len(deliveries(system, "jtj")) == 1
    resp = web.put(f"/api/v1/departments/{dept_id('jtj')}/webhook", json={"url": receiver.url, "rotate_secret": True},
                   headers=ADMIN_HEADERS)
    new_secret = resp.json["secret"]
    assert new_secret != old_secret
    hooks.run_once()
    headers, body = receiver.requests[0]
    assert verify(new_secret, headers, body, now=system.clock.now().timestamp())
    with pytest.raises(WebhookVerificationError):
        verify(old_secret, headers, body, now=system.clock.now().timestamp())
