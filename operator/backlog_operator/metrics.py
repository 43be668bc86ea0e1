"""Prometheus metrics of the operator, all prefixed `backlog_operator_`.

The scaler loop (scaler.reconcile) records backlog, replicas, scale events,
reconcile lag and per-scaler source errors; the signal hub (sources/) may call
`observe_source_query` and `count_source_error` per database query.
`serve(port)` exposes /metrics (called by `backlog-operator run --metrics-port`).
Metrics live in `REGISTRY`, not the global default, so tests and benchmarks can
read them without colliding with other collectors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
SCALER_LABELS = ("namespace", "scaler")

BACKLOG = Gauge(
    "backlog_operator_backlog_jobs",
    "Jobs in a scaler's stages by state (ready: queued or due retryable; in_flight: working).",
    (*SCALER_LABELS, "stage", "state"),
    registry=REGISTRY,
)
OLDEST_READY_SECONDS = Gauge(
    "backlog_operator_backlog_oldest_ready_seconds",
    "Age of the oldest ready job in a scaler's stages (0 when none is ready).",
    SCALER_LABELS,
    registry=REGISTRY,
)
DESIRED_REPLICAS = Gauge(
    "backlog_operator_desired_replicas",
    "Replicas the policy asked for at the last tick.",
    SCALER_LABELS,
    registry=REGISTRY,
)
CURRENT_REPLICAS = Gauge(
    "backlog_operator_current_replicas",
    "Replicas of the scale target (spec.replicas of its /scale) at the last tick.",
    SCALER_LABELS,
    registry=REGISTRY,
)
SCALE_EVENTS = Counter(
    "backlog_operator_scale_events",
    "Patches of a target's /scale, by direction (up or down).",
    (*SCALER_LABELS, "direction"),
    registry=REGISTRY,
)
SOURCE_QUERY_SECONDS = Histogram(
    "backlog_operator_source_query_seconds",
    "Latency of the grouped backlog query, per database.",
    ("database",),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
SOURCE_ERRORS = Counter(
    "backlog_operator_source_errors",
    "Failed backlog readings (query error, timeout, connection loss), per database.",
    ("database", "kind"),
    registry=REGISTRY,
)
SCALER_SOURCE_ERRORS = Counter(
    "backlog_operator_scaler_source_errors",
    "Ticks on which a scaler received a failed reading.",
    SCALER_LABELS,
    registry=REGISTRY,
)
RECONCILE_LAG_SECONDS = Histogram(
    "backlog_operator_reconcile_lag_seconds",
    "From the reading of the backlog to the end of the scaler's reconcile (patches included).",
    SCALER_LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
FALLBACK_ACTIVE = Gauge(
    "backlog_operator_fallback_active",
    "1 while the fallback behaviour decides a scaler's replicas.",
    SCALER_LABELS,
    registry=REGISTRY,
)
PAUSED = Gauge(
    "backlog_operator_paused",
    "1 while a scaler is paused (spec.paused or the backlog.dev/paused annotation).",
    SCALER_LABELS,
    registry=REGISTRY,
)


def observe_source_query(database: str, seconds: float) -> None:
    """Record one grouped query (`database` is a name, never a DSN)."""
    SOURCE_QUERY_SECONDS.labels(database).observe(seconds)


def count_source_error(database: str, kind: str) -> None:
    """Count one failed query; `kind` is short, e.g. timeout, connection, query."""
    SOURCE_ERRORS.labels(database, kind).inc()


def record_backlog(namespace: str, scaler: str, stage: str, ready: int, in_flight: int) -> None:
    BACKLOG.labels(namespace, scaler, stage, "ready").set(ready)
    BACKLOG.labels(namespace, scaler, stage, "in_flight").set(in_flight)


def record_replicas(namespace: str, scaler: str, desired: int, current: int) -> None:
    DESIRED_REPLICAS.labels(namespace, scaler).set(desired)
    CURRENT_REPLICAS.labels(namespace, scaler).set(current)


def count_scale(namespace: str, scaler: str, from_replicas: int, to_replicas: int) -> None:
    direction = "up" if to_replicas > from_replicas else "down"
    SCALE_EVENTS.labels(namespace, scaler, direction).inc()


def forget_scaler(namespace: str, scaler: str) -> None:
    """Drop a deleted scaler's series so /metrics does not grow without bound."""
    for metric in (
        OLDEST_READY_SECONDS,
        DESIRED_REPLICAS,
        CURRENT_REPLICAS,
        FALLBACK_ACTIVE,
        PAUSED,
        SCALER_SOURCE_ERRORS,
        RECONCILE_LAG_SECONDS,
    ):
        with contextlib.suppress(KeyError):
            metric.remove(namespace, scaler)
    for multi in (BACKLOG, SCALE_EVENTS):
        stale = [
            labels
            for labels in list(multi._metrics)  # prometheus-client has no public listing
            if labels[:2] == (namespace, scaler)
        ]
        for labels in stale:
            multi.remove(*labels)


class HubStatsLike(Protocol):
    """What sources.hub.HubStats provides (duck-typed: metrics does not import sources)."""

    @property
    def db(self) -> str: ...
    @property
    def subscribers(self) -> int: ...
    @property
    def ticks(self) -> int: ...
    @property
    def queries(self) -> int: ...
    @property
    def listener_connected(self) -> bool: ...


class _HubCollector(Collector):
    """Reads the live hubs' counters at scrape time."""

    def __init__(self, stats: Callable[[], Iterable[HubStatsLike]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        ticks = CounterMetricFamily(
            "backlog_operator_hub_ticks",
            "Signal-hub ticks (one per poll or NOTIFY burst).",
            labels=["database"],
        )
        queries = CounterMetricFamily(
            "backlog_operator_hub_queries",
            "Grouped backlog statements sent by a hub.",
            labels=["database"],
        )
        subscribers = GaugeMetricFamily(
            "backlog_operator_hub_subscribers", "Scalers subscribed to a hub.", labels=["database"]
        )
        listening = GaugeMetricFamily(
            "backlog_operator_hub_listener_connected",
            "1 while the LISTEN connection is up.",
            labels=["database"],
        )
        for hub in self._stats():
            ticks.add_metric([hub.db], hub.ticks)
            queries.add_metric([hub.db], hub.queries)
            subscribers.add_metric([hub.db], hub.subscribers)
            listening.add_metric([hub.db], int(hub.listener_connected))
        yield from (ticks, queries, subscribers, listening)


_hub_collector: _HubCollector | None = None


def register_hub_stats(stats: Callable[[], Iterable[HubStatsLike]]) -> None:
    """Export the hubs' counters (called once by the operator's startup handler)."""
    global _hub_collector
    if _hub_collector is not None:
        REGISTRY.unregister(_hub_collector)
    _hub_collector = _HubCollector(stats)
    REGISTRY.register(_hub_collector)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve /metrics in a daemon thread (prometheus-client's own HTTP server)."""
    start_http_server(port, addr=address, registry=REGISTRY)
