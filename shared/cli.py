"""The ``sanzhang`` command: the entry point, where settings and the real clock are made."""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from pathlib import Path

from . import logs
from .config import Settings
from .runtime import SERVICES, Runtime

log = logging.getLogger("sanzhang")


def _embedded_settings(settings: Settings, demo: bool) -> Settings:
    """The embedded run keeps a generated secret (and, for the demo, an operator token) in its data
    folder, so tokens and sealed events survive restarts. Explicit variables always win."""
    from dataclasses import replace

    path = settings.data_dir / "demo-credentials.json"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if path.exists():
        creds = json.loads(path.read_text())
    else:
        creds = {"secret": secrets.token_urlsafe(32), "admin_token": "demo-admin-" + secrets.token_urlsafe(12)}
        path.write_text(json.dumps(creds))
        path.chmod(0o600)
    from .domain.demo import DEMO_TOWNSHIP, DEMO_TOWNSHIP_NAME

    pages = settings.pages_townships or (f"{DEMO_TOWNSHIP}={DEMO_TOWNSHIP_NAME}" if demo else None)
    return replace(settings, secret=settings.secret or creds["secret"],
                   admin_token=settings.admin_token or (creds["admin_token"] if demo else None),
                   pages_townships=pages)


def _load_demo(runtime: Runtime) -> dict:
    from .auth import Principal
    from .domain.demo import DEMO_TOWNSHIP

    # Each service loads its own demo data (dispatch the roster, intake the common questions).
    loaded = {p.name: p.api["load_demo"]() for p in runtime.parts if "load_demo" in p.api}
    result = loaded["dispatch"]
    org = runtime.service("dispatch").api["org"]
    issuer = runtime.issuer
    neighbourhoods = [u for u in org.tree(DEMO_TOWNSHIP) if u["level"] == "neighbourhood" and u.get("lead")]
    first = sorted(neighbourhoods, key=lambda u: u["name"])[0]
    households = org.households.find({"township": DEMO_TOWNSHIP}, limit=200)
    sample = next(h for h in households if h["neighbourhood_id"] == first["_id"])
    return {
        "township": DEMO_TOWNSHIP, "counts": result["counts"], "address": sample["address"],
        "client": issuer.issue(Principal(role="client", townships=(DEMO_TOWNSHIP,), name="demo-mini-program")),
        "staff": issuer.issue(Principal(role="staff", townships=(DEMO_TOWNSHIP,), name="demo-staff")),
        "lead": issuer.issue(Principal(role="lead", townships=(DEMO_TOWNSHIP,), unit_id=first["_id"],
                                       name=first["lead"]["name"])),
        "lead_unit": first["name"], "lead_phone": first["lead"].get("phone"),
    }


def _print_welcome(settings: Settings, demo: dict) -> None:
    base = f"http://{settings.host}:{settings.port}"
    body = json.dumps({"township": demo["township"], "address": demo["address"], "category": "environment",
                       "description": "门口路灯坏了一个星期，晚上出行不安全", "reporter_phone": "13800000001",
                       "channel": "mini_program"}, ensure_ascii=False)
    print(f"""
sanzhang is running (embedded: one process, durable SQLite bus and stores in {settings.data_dir}/)

  Health:    {base}/healthz   {base}/readyz
  OpenAPI:   {base}/openapi.json
  Open311:   {base}/open311/v2/discovery.json
  Pages:     {base}/   (residents {base}/resident/, 三长 {base}/lead/, departments {base}/dept/)

Demo township {demo['township']} loaded ({demo['counts']}).
Tokens (demo only):
  export CLIENT={demo['client']}
  export STAFF={demo['staff']}
  export LEAD={demo['lead']}     # the 邻长 of {demo['lead_unit']}
  export ADMIN={settings.admin_token}

Sign in as that 邻长 (the demo roster's made-up number; the code shows up in this terminal):
  {base}/signin   phone {demo.get('lead_phone')}   then the workbench at {base}/lead/

Try it — submit a report, then read it back with its id or tracking number:
  curl -s -X POST {base}/api/v1/reports -H "Authorization: Bearer $CLIENT" \\
       -H 'Content-Type: application/json' -d '{body}'
  curl -s {base}/api/v1/reports/<id> -H "Authorization: Bearer $CLIENT"
  curl -s "{base}/api/v1/deliveries?township={demo['township']}" -H "Authorization: Bearer $STAFF"
""", flush=True)


def cmd_run(args) -> int:
    from .server import ServiceServer

    settings = Settings.from_env()
    settings = _embedded_settings(settings, demo=settings.demo or args.demo)
    logs.configure("sanzhang", settings.log_level)

    def build():
        runtime = Runtime(settings, SERVICES)
        if settings.demo or args.demo:
            demo = _load_demo(runtime)
            _print_welcome(settings, demo)
        return runtime

    ServiceServer(build, settings, workers=1).run()
    return 0


def cmd_service(args) -> int:
    from .server import ServiceServer

    settings = Settings.from_env()
    logs.configure(args.command, settings.log_level)
    if settings.embedded:
        print("a separately run service needs SANZHANG_AMQP_URL=amqp://… (memory:// only works in `sanzhang run`)",
              file=sys.stderr)
        return 2
    ServiceServer(lambda: Runtime(settings, [args.command]), settings, workers=settings.web_workers).run()
    return 0


def cmd_topology(args) -> int:
    from .messaging.topology import Names, declare_amqp
    from .runtime import bindings

    settings = Settings.from_env()
    declare_amqp(settings.amqp_url, Names(settings.namespace), settings.max_deliveries, bindings())
    print(f"declared topology for namespace {settings.namespace}")
    return 0


def cmd_import_roster(args) -> int:
    from .domain.spreadsheet import ImportRejected

    settings = _with_embedded_secret(Settings.from_env())
    logs.configure("sanzhang", settings.log_level)
    runtime = Runtime(settings, ["dispatch"], consume=False)
    org = runtime.service("dispatch").api["org"]
    if args.name and not args.dry_run:
        org.ensure_township(args.township, args.name)
    path = Path(args.file)
    try:
        if args.dry_run:  # the preview: what would change, nothing written
            result = org.preview_roster(args.township, path.read_bytes(), path.name)
        else:
            result = org.import_roster(args.township, path.read_bytes(), path.name, actor="cli")
    except ImportRejected as exc:
        for err in exc.errors:
            sheet = f"[{err['sheet']}] " if err.get("sheet") else ""  # the roster workbook's contacts sheet
            where = " ".join(str(p) for p in (f"第{err['row']}行" if err.get("row") else None,
                                               err.get("cell"), err.get("column")) if p)
            print(f"{sheet}{where}: {err['message']}", file=sys.stderr)
        return 1
    # The org.contacts_changed event waits in the outbox; the next dispatch process publishes it.
    print(json.dumps(result, ensure_ascii=False))
    return 0


def cmd_rebuild_figures(args) -> int:
    """Recomputes dispatch's figure rollups from the cases and stints (supervision/rollups.py):
    for data stored before the rollups existed, or after a change to how a figure is derived.
    Idempotent, and safe beside running services (each day is a compare-and-set)."""
    settings = _with_embedded_secret(Settings.from_env())
    logs.configure("sanzhang", settings.log_level)
    runtime = Runtime(settings, ["dispatch"], consume=False)
    rollups = runtime.service("dispatch").api["supervision"].rollups
    days = rollups.rebuild(args.township)
    print(json.dumps({"recomputed_days": days, "township": args.township}, ensure_ascii=False))
    return 0


def cmd_bus(args) -> int:
    """The embedded bus's queues, as RabbitMQ's management page shows its queues and <service>.dead."""
    from .messaging.embedded_bus import inspect

    settings = Settings.from_env()
    path = settings.data_dir / f"{settings.namespace}_bus.db"
    if not path.exists():
        print(f"no embedded bus at {path}", file=sys.stderr)
        return 1
    print(json.dumps(inspect(path, args.limit), ensure_ascii=False, indent=2))
    return 0


def _with_embedded_secret(settings: Settings) -> Settings:
    """A CLI command outside `sanzhang run` uses the embedded run's secret from the data folder
    (SANZHANG_DATA_DIR) when SANZHANG_SECRET is unset, so its tokens work against that run."""
    from dataclasses import replace

    path = settings.data_dir / "demo-credentials.json"
    if settings.secret or not path.exists():
        return settings
    return replace(settings, secret=json.loads(path.read_text()).get("secret"))


def cmd_token(args) -> int:
    from .auth import Principal, TokenIssuer

    settings = _with_embedded_secret(Settings.from_env())
    if not settings.secret:
        print(f"SANZHANG_SECRET is not set, and no embedded run's secret in {settings.data_dir}/demo-credentials.json "
              "(set SANZHANG_DATA_DIR to the folder `make run` uses)", file=sys.stderr)
        return 2
    principal = Principal(role=args.role, townships=tuple(args.township or ()), unit_id=args.unit,
                          name=args.name)
    print(TokenIssuer(settings.secret).issue(principal))
    return 0


def cmd_simulate(args) -> int:
    """A generated city's year through the real services under virtual time (docs/simulation.md)."""
    from sim.cli import main as simulate

    logging.basicConfig(level=logging.ERROR)
    return simulate(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sanzhang")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the whole system in one process (embedded default)")
    run.add_argument("--demo", action="store_true", help="load the demo township (default with SANZHANG_DEMO=1)")
    run.set_defaults(func=cmd_run)
    for name in SERVICES:
        sub.add_parser(name, help=f"run the {name} service alone over RabbitMQ").set_defaults(func=cmd_service)
    sub.add_parser("topology", help="declare the RabbitMQ exchanges and queues").set_defaults(func=cmd_topology)
    imp = sub.add_parser("import-roster", help="import a township roster (XLSX or CSV)")
    imp.add_argument("--township", required=True)
    imp.add_argument("--name", help="the township's name, to register it")
    imp.add_argument("--dry-run", action="store_true", help="show what the import would change; write nothing")
    imp.add_argument("file")
    imp.set_defaults(func=cmd_import_roster)
    reb = sub.add_parser("rebuild-figures", help="recompute the figure rollups from the cases (idempotent)")
    reb.add_argument("--township", help="only this township (default: every township with cases)")
    reb.set_defaults(func=cmd_rebuild_figures)
    bus = sub.add_parser("bus", help="the embedded bus: events waiting per service, dead letters")
    bus.add_argument("--limit", type=int, default=50, help="dead letters to list, newest first")
    bus.set_defaults(func=cmd_bus)
    tok = sub.add_parser("token", help="issue a signed token")
    tok.add_argument("--role", required=True, choices=["staff", "lead", "client"])
    tok.add_argument("--township", action="append")
    tok.add_argument("--unit", help="a lead's post (unit id)")
    tok.add_argument("--name")
    tok.set_defaults(func=cmd_token)
    try:
        from sim.cli import add_arguments
    except ImportError:  # the service image carries no simulator (deploy/Dockerfile copies shared/ and services/)
        add_arguments = None
    if add_arguments is not None:
        simulate = sub.add_parser("simulate", help="a generated city's year through the real code under virtual time")
        add_arguments(simulate)
        simulate.set_defaults(func=cmd_simulate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
