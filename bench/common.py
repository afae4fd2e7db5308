"""Small helpers the benchmarks share: percentiles, a Markdown table, the broker's CPU."""
from __future__ import annotations

import os
import statistics


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def processes() -> dict[int, tuple[str, int, int]]:
    """Every process on this host, from /proc: pid -> (command name, parent pid, user + system CPU
    ticks)."""
    out: dict[int, tuple[str, int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        out[int(entry)] = (head.split("(", 1)[1], int(fields[1]), int(fields[11]) + int(fields[12]))
    return out


def broker_cpu_seconds() -> float | None:
    """User + system CPU of RabbitMQ on this host (its Erlang VM, ``beam.smp``); None when it runs
    elsewhere. The broker shares the cores with what is measured, so its CPU per message is part
    of what bounds a consumer's rate on this machine."""
    ticks = [cpu for name, _, cpu in processes().values() if name == "beam.smp"]
    return sum(ticks) / os.sysconf("SC_CLK_TCK") if ticks else None


def broker_cpu_since(before: float | None) -> float | None:
    """RabbitMQ's CPU seconds since ``broker_cpu_seconds()`` answered ``before``."""
    after = broker_cpu_seconds()
    return None if before is None or after is None else after - before


def per_event_ms(seconds: float | None, n: int) -> float | str:
    return "–" if seconds is None else 1000 * seconds / max(n, 1)
