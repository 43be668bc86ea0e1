"""A recorded ScaleTest run as frozen values: what the report reads and renders.

Times in the series are seconds from the load's start (negative during the
baseline). Built by report/load.py from the results tables; consumed by
sections.py, charts.py, advice.py and compare.py. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    namespace: str
    name: str
    mode: str
    profile: str
    schema: str
    spec: Mapping[str, Any]
    phase: str
    verdict: str | None
    requested_rate: float | None
    baseline_throughput: float | None
    baseline_requested: int | None
    load_requested: int | None
    started_at: datetime
    baseline_started_at: datetime | None
    baseline_finished_at: datetime | None
    load_started_at: datetime | None
    load_finished_at: datetime | None
    drain_finished_at: datetime | None
    completed_at: datetime | None
    cleaned_up_at: datetime | None
    results: Mapping[str, Any] = field(default_factory=dict)
    db_profile: Mapping[str, Any] | None = None

    @property
    def origin(self) -> datetime:
        """Time zero of every series: the load's start."""
        return self.load_started_at or self.started_at

    def offset(self, at: datetime | None) -> float | None:
        return None if at is None else (at - self.origin).total_seconds()


@dataclass(frozen=True)
class StageStat:
    part: str
    stage: str
    completions: int
    duplicate_completions: int
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    queue_wait_p50: float | None
    queue_wait_p95: float | None
    queue_wait_total: float | None
    service_p50: float | None
    service_p95: float | None
    service_total: float | None
    avg_updated_minus_created: float | None
    utilization: float | None


@dataclass(frozen=True)
class SloRow:
    name: str
    target: float
    observed: float | None
    met: bool


@dataclass(frozen=True)
class Sample:
    at: float
    phase: str
    produced: int
    completed: int
    deadletter: int


@dataclass(frozen=True)
class StageSample:
    at: float
    stage: str
    ready: int
    in_flight: int
    done: int


@dataclass(frozen=True)
class ScalerSample:
    at: float
    scaler: str
    desired: int | None
    current: int | None


@dataclass(frozen=True)
class LatencyPoint:
    at: float  # start of the bucket
    count: int
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class RunData:
    info: RunInfo
    stages: tuple[StageStat, ...] = ()
    slo: tuple[SloRow, ...] = ()
    samples: tuple[Sample, ...] = ()
    stage_samples: tuple[StageSample, ...] = ()
    scaler_samples: tuple[ScalerSample, ...] = ()
    latency: tuple[LatencyPoint, ...] = ()
    latency_source: str = "none"  # jobs | events | none
    bucket_seconds: float = 1.0

    def stage_stats(self, part: str) -> tuple[StageStat, ...]:
        return tuple(s for s in self.stages if s.part == part)

    @property
    def scalers(self) -> tuple[str, ...]:
        return tuple(sorted({s.scaler for s in self.scaler_samples}))
