"""Settings from the environment, read once at an entry point and passed down."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

# Every variable the code reads; the deploy manifests are checked against this list. Variables
# only one service reads are listed with that service: notify's (its channels, routes, quiet
# hours, rate limit, budget, retries, receipts) in services/notify/config.py ENV_VARS.
ENV_VARS = {
    "SANZHANG_AMQP_URL": "Broker URL. memory:// (default) selects the embedded bus: a durable SQLite inbox per service in SANZHANG_DATA_DIR (docs/embedded-bus.md); amqp://user:pass@host:5672/vhost uses RabbitMQ.",
    "SANZHANG_MONGO_URL": "mongodb://… selects the MongoDB store (production). Unset: SQLite files in SANZHANG_DATA_DIR.",
    "SANZHANG_DATA_DIR": "Folder for the SQLite databases and the demo secret (default ./data).",
    "SANZHANG_NAMESPACE": "Prefix for exchange, queue and database names (default sanzhang); lets several deployments share a broker.",
    "SANZHANG_HOST": "Interface the HTTP server binds (default 127.0.0.1).",
    "SANZHANG_PORT": "HTTP port (default 8000).",
    "SANZHANG_WEB_WORKERS": "gunicorn worker processes for a separately run service (default 2; the embedded run uses 1).",
    "SANZHANG_ADMIN_TOKEN": "The operator's bearer token. Unset: no operator access (the demo sets one).",
    "SANZHANG_SECRET": "Key that signs staff, lead and client-app tokens and seals phone numbers inside events. Required outside the demo.",
    "SANZHANG_PREVIOUS_SECRET": "The secret before a rotation: events sealed with it stay readable until they have drained.",
    "SANZHANG_CONFIRM_TIMEOUT": "Seconds a publish waits for broker confirms before it fails (default 5).",
    "SANZHANG_MAX_DELIVERIES": "Attempts before a failing message goes to <service>.dead (default 5).",
    "SANZHANG_OUTBOX_POLL": "Seconds between outbox relay sweeps when nothing wakes it (default 0.2).",
    "SANZHANG_TIMER_POLL": "Seconds between SLA timer sweeps (default 1).",
    "SANZHANG_LOG_LEVEL": "Log level (default INFO).",
    "SANZHANG_SQLITE_SYNC": "SQLite synchronous mode: NORMAL (default; survives process crashes) or FULL (also power loss).",
    "SANZHANG_DEMO": "1 loads the demo township and prints demo tokens (make run sets it).",
    "SANZHANG_FAULT_POINTS": "Fault suite only: crash the process at these step boundaries (stored, published, handled). Never set in production.",
    "SANZHANG_FAULT_RATE": "Fault suite only: probability of a crash at each hit of a named point (default 0.01), or per point: published=0.006,handled=0.0003.",
    "SANZHANG_MAX_BODY": "Largest accepted request body in bytes (default 1 MiB).",
    "SANZHANG_RATE_LIMIT": "Write requests (POST/PUT/PATCH/DELETE) per credential, N/seconds, e.g. 60/60; more answer 429 with Retry-After. Kept in memory, so per gunicorn worker. Unset or off: no limit.",
}


@dataclass(frozen=True)
class Settings:
    amqp_url: str = "memory://"
    mongo_url: str | None = None
    data_dir: Path = Path("data")
    namespace: str = "sanzhang"
    host: str = "127.0.0.1"
    port: int = 8000
    web_workers: int = 2
    admin_token: str | None = None
    secret: str | None = None
    previous_secret: str | None = None
    confirm_timeout: float = 5.0
    max_deliveries: int = 5
    outbox_poll: float = 0.2
    timer_poll: float = 1.0
    log_level: str = "INFO"
    sqlite_sync: str = "NORMAL"
    demo: bool = False
    max_body: int = 1024 * 1024
    rate_limit: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.amqp_url.startswith("memory://")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        get = env.get
        return cls(
            amqp_url=get("SANZHANG_AMQP_URL") or "memory://",
            mongo_url=get("SANZHANG_MONGO_URL") or None,
            data_dir=Path(get("SANZHANG_DATA_DIR") or "data"),
            namespace=get("SANZHANG_NAMESPACE") or "sanzhang",
            host=get("SANZHANG_HOST") or "127.0.0.1",
            port=int(get("SANZHANG_PORT") or 8000),
            web_workers=int(get("SANZHANG_WEB_WORKERS") or 2),
            admin_token=get("SANZHANG_ADMIN_TOKEN") or None,
            secret=get("SANZHANG_SECRET") or None,
            previous_secret=get("SANZHANG_PREVIOUS_SECRET") or None,
            confirm_timeout=float(get("SANZHANG_CONFIRM_TIMEOUT") or 5),
            max_deliveries=int(get("SANZHANG_MAX_DELIVERIES") or 5),
            outbox_poll=float(get("SANZHANG_OUTBOX_POLL") or 0.2),
            timer_poll=float(get("SANZHANG_TIMER_POLL") or 1),
            log_level=get("SANZHANG_LOG_LEVEL") or "INFO",
            sqlite_sync=(get("SANZHANG_SQLITE_SYNC") or "NORMAL").upper(),
            demo=(get("SANZHANG_DEMO") or "") in ("1", "true", "yes"),
            max_body=int(get("SANZHANG_MAX_BODY") or 1024 * 1024),
            rate_limit=get("SANZHANG_RATE_LIMIT") or None,
            extra=env,
        )
