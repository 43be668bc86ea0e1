"""A run's results as frozen values, and the bounded summary the status shows.

Pure. `scaler_figures(samples, start, end)` derives max replicas,
replica-seconds and the time to first scale-up from the sampled scaler series;
`Results.to_status()` is the `status.results` object (bounded: per-stage and
per-scaler maps only), `Results.to_json()` the full record stored in
scaletest_runs.results. Built by scaletest/analysis.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from backlog_operator.scaletest import stats
from backlog_operator.scaletest.bottleneck import Bottleneck
from backlog_operator.scaletest.phases import Verdict
from backlog_operator.scaletest.slo import SloResult


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _compact(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None values: the status schema has no nullable fields."""
    return {k: v for k, v in mapping.items() if v is not None}


@dataclass(frozen=True)
class Percentiles:
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None

    @classmethod
    def of(cls, values: Sequence[float | None] | None) -> Percentiles:
        padded = [*(values or ()), None, None, None]
        return cls(*(_r(v) for v in padded[:3]))

    def to_status(self) -> dict[str, float]:
        return _compact({"p50": self.p50, "p95": self.p95, "p99": self.p99})


@dataclass(frozen=True)
class StageFigures:
    stage: str
    completions: int
    duplicate_completions: int = 0
    latency: Percentiles = field(default_factory=Percentiles)
    queue_wait: Percentiles = field(default_factory=Percentiles)
    queue_wait_total: float = 0.0
    service_p50: float | None = None
    service_p95: float | None = None
    service_total: float = 0.0
    avg_updated_minus_created: float | None = None
    utilization: float | None = None


@dataclass(frozen=True)
class ScalerSample:
    scaler: str
    at: datetime
    desired: int | None
    current: int | None


@dataclass(frozen=True)
class ScalerFigures:
    scaler: str
    max_replicas: int
    replica_seconds: float
    first_scale_up_seconds: float | None  # from the load's start; None: never rose


def scaler_figures(
    samples: Sequence[ScalerSample], start: datetime, end: datetime
) -> tuple[ScalerFigures, ...]:
    """Per scaler: the most current replicas, their integral over [start, end], first rise."""
    out = []
    for name in sorted({s.scaler for s in samples}):
        mine = [s for s in samples if s.scaler == name]
        current = [
            stats.Point((s.at - start).total_seconds(), float(s.current))
            for s in mine
            if s.current is not None and start <= s.at <= end
        ]
        desired = [
            stats.Point((s.at - start).total_seconds(), float(s.desired))
            for s in mine
            if s.desired is not None and s.at <= end
        ]
        out.append(
            ScalerFigures(
                scaler=name,
                max_replicas=int(stats.maximum(current) or 0),
                replica_seconds=stats.step_integral(current, end=(end - start).total_seconds()),
                first_scale_up_seconds=stats.first_rise(desired, 0.0),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class DbProfile:
    """The database during and after the run."""

    pg_stat_statements: bool
    top_statements: tuple[Mapping[str, Any], ...] = ()
    connections_by_state: Mapping[str, int] = field(default_factory=dict)
    lock_waits: int = 0
    live_tuples: int = 0
    dead_tuples: int = 0
    relfrozenxid_age: int | None = None
    oldest_transaction_seconds: float | None = None
    # The worst the sampler saw during the run (the fields above are after the load).
    max_lock_waits_during_run: int | None = None
    max_connections_during_run: int | None = None
    max_oldest_transaction_seconds_during_run: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.pg_stat_statements:
            out["top_statements"] = "absent: the pg_stat_statements extension is not installed"
        return out


@dataclass(frozen=True)
class Results:
    jobs: int
    done: int
    deadletter: int
    lost_jobs: int
    duplicate_completions: int
    throughput_per_second: float | None
    producer_rate_per_second: float | None
    requested_rate_per_second: float | None
    end_to_end: Percentiles
    queue_wait_p95_seconds: float | None
    drain_seconds: float | None
    stages: tuple[StageFigures, ...] = ()
    scalers: tuple[ScalerFigures, ...] = ()
    bottleneck: Bottleneck | None = None
    slo: tuple[SloResult, ...] = ()
    verdict: Verdict = Verdict.PASSED
    db_profile: DbProfile | None = None
    pods_deleted: int = 0

    @property
    def time_to_first_scale_seconds(self) -> float | None:
        rises = [s.first_scale_up_seconds for s in self.scalers]
        return min((r for r in rises if r is not None), default=None)

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "jobs": self.jobs,
            "throughputPerSecond": _r(self.throughput_per_second),
            "producerRatePerSecond": _r(self.producer_rate_per_second),
            "requestedRatePerSecond": _r(self.requested_rate_per_second),
            "latency": {
                "endToEnd": self.end_to_end.to_status(),
                "stages": {s.stage: s.latency.to_status() for s in self.stages},
            },
            "queueWaitP95Seconds": _r(self.queue_wait_p95_seconds),
            "timeToFirstScaleSeconds": _r(self.time_to_first_scale_seconds),
            "drainSeconds": _r(self.drain_seconds),
            "maxReplicas": {s.scaler: s.max_replicas for s in self.scalers},
            "replicaSeconds": {s.scaler: _r(s.replica_seconds, 1) for s in self.scalers},
            "lostJobs": self.lost_jobs,
            "duplicateCompletions": self.duplicate_completions,
            "podsDeleted": self.pods_deleted,
            "slo": [r.to_status() for r in self.slo],
        }
        if self.bottleneck is not None:
            out["bottleneckStage"] = self.bottleneck.stage
            out["bottleneckUtilization"] = _r(self.bottleneck.utilization)
        return _compact(out)

    def to_json(self) -> dict[str, Any]:
        """The full record for scaletest_runs.results (the status gets to_status())."""
        out = self.to_status()
        out["done"] = self.done
        out["deadletter"] = self.deadletter
        out["verdict"] = self.verdict.value
        out["stages"] = [
            {**asdict(s), "latency": asdict(s.latency), "queue_wait": asdict(s.queue_wait)}
            for s in self.stages
        ]
        out["scalers"] = [asdict(s) for s in self.scalers]
        if self.bottleneck is not None:
            out["bottleneck"] = asdict(self.bottleneck)
        return out
