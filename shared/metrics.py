"""Prometheus metrics. Counters are bumped where things happen; gauges that are really database
facts (backlogs, open cases) are read at scrape time by collectors the services register."""
from __future__ import annotations

import os
from typing import Callable, Iterable

# Several gunicorn workers in one pod each count their own events; with PROMETHEUS_MULTIPROC_DIR
# set (the image sets it) their counters are merged at scrape time. The folder must exist before
# prometheus_client is imported, because that is when it picks its storage.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_CONSUMED = Counter("sanzhang_events_consumed_total", "Events handled by a consumer",
                          ["service", "type", "result"], registry=REGISTRY)
HANDLER_SECONDS = Histogram("sanzhang_handler_seconds", "Time a consumer spends on one event",
                            ["service", "type"], registry=REGISTRY,
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
DEAD_LETTERED = Counter("sanzhang_dead_lettered_total", "Messages sent to a dead-letter queue",
                        ["service", "reason"], registry=REGISTRY)
EVENTS_PUBLISHED = Counter("sanzhang_events_published_total", "Events confirmed by the broker",
                           ["type"], registry=REGISTRY)
PUBLISH_FAILURES = Counter("sanzhang_publish_failures_total", "Outbox batches the broker did not confirm",
                           ["reason"], registry=REGISTRY)
REPORTS_RECEIVED = Counter("sanzhang_reports_received_total", "Reports accepted by intake",
                           ["channel"], registry=REGISTRY)
ESCALATIONS = Counter("sanzhang_escalations_total", "Cases moved up a level", ["from_level", "cause"],
                      registry=REGISTRY)
BREACHES = Counter("sanzhang_sla_breaches_total", "SLA limits missed", ["level", "kind"], registry=REGISTRY)
NOTIFICATIONS = Counter("sanzhang_notifications_total", "Messages by channel and result",
                        ["channel", "result"], registry=REGISTRY)


BREACH_REASONS = {"超时未接单": "accept", "超时未办结": "resolve"}


def count_stored(events) -> None:
    """Domain counters, bumped once per event actually stored (never per compare-and-set retry)."""
    for event in events:
        kind, payload = event["type"], event.get("payload", {})
        if kind in ("case.escalated", "case.referred"):
            previous = (payload.get("previous") or {}).get("level", "")
            cause = "sla" if payload.get("reason") in BREACH_REASONS else "lead"
            ESCALATIONS.labels(previous, cause).inc()
        elif kind == "sla.breached":
            level = (payload.get("assignee") or {}).get("level", "")
            BREACHES.labels(level, BREACH_REASONS.get(payload.get("reason"), "other")).inc()


class _Gauges:
    """Scrape-time gauges: each source returns [(labels dict, value)]."""

    def __init__(self):
        self.sources: dict[str, tuple[str, list[str], Callable[[], Iterable[tuple[dict, float]]]]] = {}

    def add(self, name: str, doc: str, labels: list[str], source) -> None:
        self.sources[name] = (doc, labels, source)

    def collect(self):
        for name, (doc, labels, source) in list(self.sources.items()):
            family = GaugeMetricFamily(name, doc, labels=labels)
            try:
                for label_values, value in source():
                    family.add_metric([str(label_values.get(l, "")) for l in labels], value)
            except Exception:  # a scrape must not fail because one store is away; readyz says so
                continue
            yield family


GAUGES = _Gauges()
REGISTRY.register(GAUGES)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several gunicorn workers: merge their files (the scrape-time gauges come from this worker,
        # which reads the shared database, so they are the same in every worker).
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(GAUGES)
        return generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8"
    return generate_latest(REGISTRY), "text/plain; version=0.0.4; charset=utf-8"
