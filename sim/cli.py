"""`sanzhang simulate`: options, the run (or two, for a what-if), the files it writes."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

from .report import render
from .run import Options, simulate
from .spec import PRESETS, SpecError, load_behaviour, load_city, read_json
from .system import RefusedFolder, prepare_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), default="shaoshan", help="the city: shaoshan (the article's) or township (CI size)")
    p.add_argument("--city", help="a JSON file describing the city (overrides the preset's fields)")
    p.add_argument("--behaviour", help="a JSON file of behaviour distributions (docs/simulation.md)")
    p.add_argument("--policy", help="an SLA policy (the GET …/sla-policy document) for every township; default today's 0211")
    p.add_argument("--compare", help="what-if: a second policy file, run on the same synthetic year")
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--start", default="2026-01-01", help="first day, YYYY-MM-DD (Beijing)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--intensity", type=float, default=1.0, help="reports × this (a small city with work to do)")
    p.add_argument("--data-dir", help="an empty folder for the simulated system's databases (default: a new temporary one)")
    p.add_argument("--out", default="simulation", help="folder for report.html, the XLSX exports and summary.json")


def options(args) -> list[Options]:
    city = {**PRESETS[args.preset], **(read_json(args.city, "city") if args.city else {})}
    behaviour = load_behaviour(read_json(args.behaviour, "behaviour") if args.behaviour else {})
    try:
        start = date.fromisoformat(args.start)
    except ValueError:
        raise SpecError("options", {"start": ["日期格式应为 YYYY-MM-DD"]}) from None
    if not 1 <= args.days <= 366:
        raise SpecError("options", {"days": ["必须在 1 到 366 之间"]})
    base = dict(city=load_city(city), behaviour=behaviour, seed=args.seed, start=start, days=args.days,
                intensity=args.intensity)
    runs = [Options(**base, policy=_policy(args.policy), label=_label(args.policy, "现行0211"))]
    if args.compare:
        runs.append(Options(**base, policy=_policy(args.compare), label=_label(args.compare, "对比政策")))
    return runs


def _policy(path: str | None) -> dict | None:
    if not path:
        return None
    doc = read_json(path, "policy")
    if not isinstance(doc, dict):
        raise SpecError("policy", {"_schema": ["必须是一个 JSON 对象（GET …/sla-policy 的格式）"]})
    return doc


def _label(path: str | None, default: str) -> str:
    return Path(path).stem if path else default


def main(args) -> int:
    try:
        runs = options(args)
        outcomes = [_one(run, args, i) for i, run in enumerate(runs)]
    except SpecError as exc:
        print(f"模拟参数有误 — {exc}", file=sys.stderr)
        return 2
    except RefusedFolder as exc:
        print(str(exc), file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").write_text(render(outcomes), encoding="utf-8")
    for i, o in enumerate(outcomes):
        for code, data in o.xlsx.items():
            (out / f"figures-{i + 1}-{o.label}-{code}.xlsx").write_bytes(data)
    summary = [{"label": o.label, "counts": o.counts, "audit": o.audit, "runtime_s": o.runtime_s, "peak_mb": o.peak_mb,
                "city": o.city, "boards": o.series.get("boards"), "figures": o.figures} for o in outcomes]
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    for o in outcomes:
        a = o.audit
        print(f"[{o.label}] reports {a['reports']} = cases {a['cases']} + instant {a['instant_answers']}; "
              f"doubled {a['reports_with_two_cases']}, lost {a['reports_without_case']}, dead letters {a['dead_letters']}, "
              f"outbox {a['outbox_backlog']}, bus {a['waiting_on_bus']} — {'OK' if a['ok'] else 'MISMATCH'} "
              f"({o.runtime_s}s, peak {o.peak_mb} MB)")
    print(f"report: {out / 'report.html'}")
    return 0 if all(o.audit["ok"] for o in outcomes) else 1


def _one(run: Options, args, index: int):
    if args.data_dir:
        if index == 0:
            prepare_folder(Path(args.data_dir))  # refuses a folder that is not empty or not a simulation's
        return simulate(run, Path(args.data_dir) / f"run{index + 1}")
    folder = Path(tempfile.mkdtemp(prefix="sanzhang-sim-"))
    try:
        return simulate(run, folder / "data")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
