"""Settings from the environment, read once at an entry point and passed down."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .domain.localtime import DEFAULT_ZONE

@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, its default as an operator would write it (None: unset)
    and what it does. docs/configuration.md is generated from these (tools/gen_config_docs.py)."""
    env: str
    default: str | None
    description: str


# Every variable every service reads, the single list: Settings.from_env takes its defaults from
# here, docs/configuration.md is generated from it and the deploy manifests are checked against
# it. Variables only one service reads are listed with that service: notify's (its channels,
# routes, quiet hours, rate limit, budget, retries, receipts) in services/notify/config.py ENV_VARS.
SETTINGS: tuple[Setting, ...] = (
    Setting("SANZHANG_AMQP_URL", "memory://", "Broker URL. memory:// selects the embedded bus: a durable SQLite inbox per service in SANZHANG_DATA_DIR (docs/embedded-bus.md); amqp://user:pass@host:5672/vhost uses RabbitMQ."),
    Setting("SANZHANG_MONGO_URL", None, "mongodb://… selects the MongoDB store (production). Unset: SQLite files in SANZHANG_DATA_DIR."),
    Setting("SANZHANG_DATA_DIR", "data", "Folder for the SQLite databases and the demo secret."),
    Setting("SANZHANG_NAMESPACE", "sanzhang", "Prefix for exchange, queue and database names; lets several deployments share a broker."),
    Setting("SANZHANG_HOST", "127.0.0.1", "Interface the HTTP server binds."),
    Setting("SANZHANG_PORT", "8000", "HTTP port."),
    Setting("SANZHANG_WEB_WORKERS", "2", "gunicorn worker processes for a separately run service (the embedded run uses 1)."),
    Setting("SANZHANG_ADMIN_TOKEN", None, "The operator's bearer token. Unset: no operator access (the demo sets one)."),
    Setting("SANZHANG_SECRET", None, "Key that signs staff, lead and client-app tokens and seals phone numbers inside events. Required outside the demo."),
    Setting("SANZHANG_PREVIOUS_SECRET", None, "The secret before a rotation: events sealed with it stay readable until they have drained."),
    Setting("SANZHANG_CONFIRM_TIMEOUT", "5", "Seconds a publish waits for broker confirms before it fails."),
    Setting("SANZHANG_MAX_DELIVERIES", "5", "Attempts before a failing message goes to <service>.dead."),
    Setting("SANZHANG_CONSUME_BATCH", "32", "RabbitMQ consumers: up to this many waiting messages are stored by one commit (on SQLite, handled outside the write lock) and acked together after it (prefetch: twice this, at least 32). 1: one at a time."),
    Setting("SANZHANG_OUTBOX_POLL", "0.2", "Seconds between outbox relay sweeps when nothing wakes it."),
    Setting("SANZHANG_TIMER_POLL", "1", "Seconds between SLA timer sweeps."),
    Setting("SANZHANG_LOG_LEVEL", "INFO", "Log level."),
    Setting("SANZHANG_SQLITE_SYNC", "NORMAL", "SQLite synchronous mode: NORMAL (survives process crashes) or FULL (also power loss)."),
    Setting("SANZHANG_DEMO", None, "1 loads the demo township and prints demo tokens (make run sets it)."),
    Setting("SANZHANG_FAULT_POINTS", None, "Fault suite only: crash the process at these step boundaries (stored, published, handled). Never set in production."),
    Setting("SANZHANG_FAULT_RATE", "0.01", "Fault suite only: probability of a crash at each hit of a named point, or per point: published=0.006,handled=0.0003."),
    Setting("SANZHANG_FAULT_ONCE", None, "Fault suite only: besides the random crashes, the Nth hit of a point in a process ends it, once per run: published=20,stored=150. Needs SANZHANG_FAULT_ONCE_DIR."),
    Setting("SANZHANG_FAULT_ONCE_DIR", None, "Fault suite only: where the once-per-run crashes leave their marker files, so a restarted worker does not crash there again."),
    Setting("SANZHANG_MAX_BODY", "1048576", "Largest accepted request body in bytes (1 MiB)."),
    Setting("SANZHANG_TIMEZONE", DEFAULT_ZONE, "The local time zone: working days, holidays, quiet hours, quarters and the times people read."),
    Setting("SANZHANG_RATE_LIMIT", None, "Write requests (POST/PUT/PATCH/DELETE) per credential, N/seconds, e.g. 60/60; more answer 429 with Retry-After. Kept in memory, so per gunicorn worker. Unset or off: no limit."),
    Setting("SANZHANG_SESSION_HOURS", "12", "Hours a person's sign-in (bearer token or page cookie) lasts; signing out ends it sooner (docs/sign-in.md)."),
    Setting("SANZHANG_COOKIE_SECURE", "1", "1: the page session cookie is __Host-, Secure (HTTPS only). 0: plain http on localhost only (make run sets it); never in production."),
    Setting("SANZHANG_WECOM_OAUTH", None, "WeCom web sign-in (企业微信网页授权) per township, JSON: {\"<township>\": {\"corp_id\", \"agent_id\", \"secret\"}} (the secret of the app whose trusted domain serves /signin). Unset: SMS codes only."),
    Setting("SANZHANG_WECOM_OAUTH_ENDPOINT", "https://qyapi.weixin.qq.com", "WeCom's API for web sign-in (tests point it at a local fake)."),
    Setting("SANZHANG_SIGNIN_ADDRESS_LIMIT", "30", "Sign-in codes one client address may ask for per hour (besides 1 a minute and 5 an hour per phone)."),
    Setting("SANZHANG_PAGES_TOWNSHIPS", None, "Townships whose residents may report on the public pages (/resident/), comma-separated, each code=name, e.g. 430382100=清溪镇. Unset: the pages take no new reports (tracking and rating still work). The demo opens its township."),
    Setting("SANZHANG_TRUSTED_PROXIES", "0", "How many proxies in front of the service set X-Forwarded-For/-Proto/-Host (the Compose proxy or the Kubernetes Ingress: 1). The client's address (rate limits) and https (secure cookies) are read from them. 0: the headers are ignored."),
)

def setting(settings: "Settings", env: str) -> str | None:
    """A listed variable that ``Settings`` has no field for: its value from the environment the
    settings were read from, else its default."""
    return (settings.extra or {}).get(env) or DEFAULTS[env]


# Name -> meaning, the registry the deploy tests read.
ENV_VARS = {s.env: s.description for s in SETTINGS}
DEFAULTS = {s.env: s.default for s in SETTINGS}


def markdown_table(rows: list[tuple[str, str | None, str]]) -> str:
    """A Markdown table of (variable, default, meaning) rows; None: no default (unset)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for env, default, description in rows:
        shown = f"`{cell(default)}`" if default is not None else "unset"
        lines.append(f"| `{env}` | {shown} | {cell(description)} |")
    return "\n".join(lines) + "\n"


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
    consume_batch: int = 32
    timer_poll: float = 1.0
    log_level: str = "INFO"
    sqlite_sync: str = "NORMAL"
    demo: bool = False
    max_body: int = 1024 * 1024
    rate_limit: str | None = None
    timezone: str = DEFAULT_ZONE
    pages_townships: str | None = None
    trusted_proxies: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.amqp_url.startswith("memory://")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)

        def get(name: str) -> str | None:
            # An empty value means the default, as an empty ConfigMap entry does.
            return env.get(name) or DEFAULTS[name]

        return cls(
            amqp_url=get("SANZHANG_AMQP_URL"),
            mongo_url=get("SANZHANG_MONGO_URL") or None,
            data_dir=Path(get("SANZHANG_DATA_DIR")),
            namespace=get("SANZHANG_NAMESPACE"),
            host=get("SANZHANG_HOST"),
            port=int(get("SANZHANG_PORT")),
            web_workers=int(get("SANZHANG_WEB_WORKERS")),
            admin_token=get("SANZHANG_ADMIN_TOKEN") or None,
            secret=get("SANZHANG_SECRET") or None,
            previous_secret=get("SANZHANG_PREVIOUS_SECRET") or None,
            confirm_timeout=float(get("SANZHANG_CONFIRM_TIMEOUT")),
            max_deliveries=int(get("SANZHANG_MAX_DELIVERIES")),
            outbox_poll=float(get("SANZHANG_OUTBOX_POLL")),
            consume_batch=int(get("SANZHANG_CONSUME_BATCH")),
            timer_poll=float(get("SANZHANG_TIMER_POLL")),
            log_level=get("SANZHANG_LOG_LEVEL"),
            sqlite_sync=get("SANZHANG_SQLITE_SYNC").upper(),
            demo=(get("SANZHANG_DEMO") or "") in ("1", "true", "yes"),
            max_body=int(get("SANZHANG_MAX_BODY")),
            rate_limit=get("SANZHANG_RATE_LIMIT") or None,
            timezone=get("SANZHANG_TIMEZONE"),
            pages_townships=get("SANZHANG_PAGES_TOWNSHIPS") or None,
            trusted_proxies=int(get("SANZHANG_TRUSTED_PROXIES")),
            extra=env,
        )
