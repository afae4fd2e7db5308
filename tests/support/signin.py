"""Helpers for sign-in tests: a seeded embedded system, the 'phone' (what the console channel
delivered), and signing in over HTTP."""
from __future__ import annotations

import re

from shared.cli import _load_demo

CODE_PATTERN = re.compile(r"(?<!\d)(\d{6})(?!\d)")


class Phone:
    """The console channel's terminal stands in for every handset: what it was sent, by phone."""

    def __init__(self, runtime):
        self.messages = []
        runtime.service("notify").api["channels"]["console"].terminal = self.messages.append

    def wait_for_code(self, phone: str, runtime, after: int, timeout: float = 10.0) -> str | None:
        """The code of a message that arrived after the first ``after`` ones."""
        import time

        deadline = time.monotonic() + timeout
        runtime.drain(timeout)
        while time.monotonic() < deadline and self.last_code(phone, after) is None:
            time.sleep(0.05)
        return self.last_code(phone, after)

    def last_code(self, phone: str, after: int = 0) -> str | None:
        for msg in reversed(self.messages[after:]):
            if msg.template.startswith("signin.") and msg.phone == phone:
                return CODE_PATTERN.search(msg.text).group(1)
        return None


def seed(runtime) -> dict:
    """The demo township, its roster, and the first neighbourhood lead (name, post, phone)."""
    demo = _load_demo(runtime)
    assert runtime.drain(15)
    org = runtime.service("dispatch").api["org"]
    unit = next(u for u in org.tree(demo["township"]) if u["name"] == demo["lead_unit"] and u["level"] == "neighbourhood")
    return {**demo, "unit_id": unit["_id"], "lead_name": unit["lead"]["name"], "lead_phone": unit["lead"]["phone"]}


def ask(web, phone: str, address: str = "10.0.0.1"):
    return web.post("/api/v1/signin/code", json={"phone": phone}, environ_base={"REMOTE_ADDR": address})


def sign_in(web, runtime, phone_box: Phone, phone: str, address: str = "10.0.0.1") -> dict:
    """Asks for a code, reads it off the 'phone', enters it: the session's JSON."""
    before = len(phone_box.messages)
    resp = ask(web, phone, address)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    code = phone_box.wait_for_code(phone, runtime, before)
    assert code, "no code reached the phone"
    done = web.post("/api/v1/signin/verify", json={"challenge_id": resp.json["challenge_id"], "sms_code": code})
    assert done.status_code == 200, done.get_data(as_text=True)
    return done.json


def sign_in_page(client, runtime, phone: str, next_: str | None = None, address: str = "10.0.0.9"):
    """Signs the test client in through the pages (/signin): asks for a code, reads it off the
    'phone', enters it; the client then holds the session cookie. Returns the client."""
    phone_box = Phone(runtime)
    before = len(phone_box.messages)
    asked = client.post("/signin/code", data={"phone": phone}, environ_base={"REMOTE_ADDR": address})
    challenge_id = asked.get_data(as_text=True).split('name=challenge_id value="')[1].split('"')[0]
    code = phone_box.wait_for_code(phone, runtime, before)
    form = {"challenge_id": challenge_id, "sms_code": code, **({"next": next_} if next_ is not None else {})}
    done = client.post("/signin/verify", data=form)
    assert done.status_code == 303, code
    return client


def csrf(client) -> str:
    """The signed-in page session's CSRF token, as the pages' forms carry it."""
    return client.get("/api/v1/me").json["csrf_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
