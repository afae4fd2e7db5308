"""`make bench`: every benchmark with its baseline in the same run; the table goes to stdout and,
verbatim, to BENCHMARKS.md with the machine, the command and the date."""
from __future__ import annotations

import io
import os
import platform
import subprocess
import sys
from contextlib import redirect_stdout
from datetime import datetime, timezone
from pathlib import Path

BENCHES = [
    ("bench.bench_cpu", []),  # the code's own CPU per report and per event, steadier than the rates
    ("bench.bench_intake", []),
    ("bench.bench_e2e", []),
    ("bench.bench_pipeline", []),
    ("bench.bench_storage", ["--cases", "100000", "1000000"]),
    ("bench.bench_timers", ["--timers", "1000000", "--due", "10000"]),  # issue 16's size
    # a county-level city's peak day (1,550 reports × 4) through the four processes, ~10 min
    ("bench.bench_peak_day", []),
    # a whole city's year of figures (issue 16), in its own section: slow to seed (~10 min)
    ("bench.bench_figures", ["--cases", "1000000"]),
]


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    rabbit = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True).stdout.strip() or "?"
    return (f"{os.cpu_count()} × {cpu}{mem}; Python {platform.python_version()}; "
            f"SQLite {__import__('sqlite3').sqlite_version}; RabbitMQ {rabbit}")


def main() -> int:
    quick = "--quick" in sys.argv
    started = datetime.now(timezone.utc)
    out = io.StringIO()
    for module, args in BENCHES:
        if quick:
            args = {"bench.bench_cpu": ["--reports", "500", "--events", "1000", "--rounds", "1"],
                    "bench.bench_storage": ["--cases", "100000"], "bench.bench_timers": [],
                    "bench.bench_figures": ["--cases", "100000"],
                    "bench.bench_peak_day": ["--minutes", "2"]}.get(module, args)
        print(f"running {module} {' '.join(args)} …", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True)
        text = proc.stdout if proc.returncode == 0 else f"**{module} failed** (exit {proc.returncode}):\n\n```\n{proc.stderr[-3000:]}\n```\n"
        print(text, flush=True)
        out.write(text + "\n")
    header = (f"# Benchmarks\n\nWritten by `make bench` (`python -m bench{' --quick' if quick else ''}`) on "
              f"{started:%Y-%m-%d %H:%M} UTC. Machine: {machine()}.\nEvery figure below is what that run printed; "
              "nothing here is edited by hand. Each benchmark ran its baseline in the same run.\n\n")
    Path("BENCHMARKS.md").write_text(header + out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
