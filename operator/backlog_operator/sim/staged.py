"""ScaleTest `mode: Simulated`: a load profile through chained stages, shaped like a live run.

Called by the ScaleTest controller (scaletest/ may import sim/, never the reverse) with the
per-second arrivals of its load profile (scaletest.profiles.rates) and one `StageModel`
per stage. `simulate_stages(...).to_status()` has the keys of a live run's
`status.results` (scaletest.results.Results.to_status).

Model and its limits (docs/decisions/0013): each stage is one FIFO queue served by the
replicas of ONE scaler (a scaler spanning several stages is modelled as one stage; a
stage without a scaler gets fixed replicas via sim.scripted). Stages are chained in
order: a job enters stage k+1 the instant it completes stage k. No failures, retries
or lost jobs (workload.failureRate and chaos are ignored), no database or claim latency,
no pods shared between stages.

`queueWaitP95Seconds` means what a live run's does (scaletest/analysis.sql): the p95 over
every (job, stage) pair of the wait from entering the stage to its start. Pipeline
stages the caller does not model (`waitless_stages`) count as pairs with zero wait, as
a live run counts every stage a job passes. The p95 over jobs of their waits summed
across the stages is `StagedResult.job_queue_wait_p95_seconds` (not in the status).
"""

from __future__ import annotations

import dataclasses
import math
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backlog_operator.sim import engine, traces
from backlog_operator.sim.engine import Controller
from backlog_operator.sim.ours import OursController
from backlog_operator.sim.results import percentile
from backlog_operator.sim.scripted import Scripted
from backlog_operator.sim.service import Distribution, ServiceTime


@dataclass(frozen=True)
class StageModel:
    """One stage: its service time and the controller sizing its workers."""

    stage: str
    service: ServiceTime
    controller: Controller
    scaler: str | None = None  # key of maxReplicas / replicaSeconds; default: the stage


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        ordered = sorted(values)
        return cls(*(round(percentile(ordered, q), 3) for q in (50, 95, 99)))

    def as_dict(self) -> dict[str, float]:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99}


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    scaler: str
    latency: Percentiles  # queue wait + service in this stage
    queue_wait: Percentiles
    max_replicas: int
    replica_seconds: float
    first_scale_up_s: float | None
    utilization: float  # busy seconds / replica-seconds


@dataclass(frozen=True)
class StagedResult:
    """A simulated ScaleTest run; `to_status()` mirrors a live run's status.results."""

    jobs: int
    done: int
    throughput_per_second: float
    producer_rate_per_second: float
    end_to_end: Percentiles
    queue_wait_p95_seconds: float  # p95 over (job, stage) pairs, as a live run's
    drain_seconds: float  # last completion - end of the load
    stages: tuple[StageOutcome, ...]
    job_queue_wait_p95_seconds: float = 0.0  # p95 over jobs of their waits summed over stages

    @property
    def time_to_first_scale_seconds(self) -> float | None:
        rises = [s.first_scale_up_s for s in self.stages if s.first_scale_up_s is not None]
        return min(rises, default=None)

    @property
    def bottleneck_stage(self) -> str | None:
        return max(self.stages, key=lambda s: s.utilization).stage if self.stages else None

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "jobs": self.jobs,
            "throughputPerSecond": round(self.throughput_per_second, 3),
            "producerRatePerSecond": round(self.producer_rate_per_second, 3),
            "latency": {
                "endToEnd": self.end_to_end.as_dict(),
                "stages": {s.stage: s.latency.as_dict() for s in self.stages},
            },
            "queueWaitP95Seconds": round(self.queue_wait_p95_seconds, 3),
            "drainSeconds": round(self.drain_seconds, 3),
            "maxReplicas": {s.scaler: s.max_replicas for s in self.stages},
            "replicaSeconds": {s.scaler: round(s.replica_seconds, 1) for s in self.stages},
            "lostJobs": 0,
            "duplicateCompletions": 0,
        }
        first = self.time_to_first_scale_seconds
        if first is not None:
            out["timeToFirstScaleSeconds"] = round(first, 3)
        if self.bottleneck_stage is not None:
            out["bottleneckStage"] = self.bottleneck_stage
        return out


def service_for(workload: Mapping[str, Any], stage: str) -> ServiceTime:
    """A ScaleTest `spec.workload` service time for `stage`: the stage's entry over `default`.

    Shape: {serviceTime: {default: {meanSeconds, distribution}, stages: {name: {...}}}};
    missing fields fall back to 0.2 s Exponential (the reference worker's default).
    """
    times = workload.get("serviceTime") or {}
    merged: dict[str, Any] = {"meanSeconds": 0.2, "distribution": "Exponential"}
    merged.update(times.get("default") or {})
    merged.update((times.get("stages") or {}).get(stage) or {})
    by_name = {d.value.lower(): d for d in Distribution}
    name = str(merged["distribution"]).lower()
    if name not in by_name:
        raise ValueError(
            f"spec.workload.serviceTime: unknown distribution {merged['distribution']!r}"
        )
    cv = float(merged.get("cv", 1.0))
    return ServiceTime(float(merged["meanSeconds"]), by_name[name], cv)


def stage_model(
    stage: str,
    workload: Mapping[str, Any],
    scaler_name: str | None = None,
    scaler_spec: Mapping[str, Any] | None = None,
    fixed_replicas: int = 1,
) -> StageModel:
    """A stage sized by a BacklogScaler spec (CRD defaults apply), else fixed replicas."""
    service = service_for(workload, stage)
    if scaler_spec is None:
        return StageModel(stage, service, Scripted(((0.0, fixed_replicas),)), scaler_name)
    controller = OursController.from_spec(dict(scaler_spec), name=scaler_name or stage)
    return StageModel(stage, service, controller, scaler_name)


def whole_counts(rates: Sequence[float]) -> list[int]:
    """Per-second fractional rates -> whole arrivals, carrying fractions (exact total)."""
    counts, carry = [], 0.0
    for rate in rates:
        carry += max(float(rate), 0.0)
        whole = int(carry + 1e-9)
        counts.append(whole)
        carry -= whole
    return counts


def simulate_stages(
    arrivals_per_second: Sequence[float],
    stages: Sequence[StageModel],
    *,
    startup_s: float = 5.0,
    seed: int = 0,
    max_tail_s: float = 3600.0,
    waitless_stages: int = 0,
) -> StagedResult:
    """Run the load through `stages` in order; every stage sees the previous one's output.

    `waitless_stages`: pipeline stages a job also passes that are not modelled (served
    without queueing); each adds one zero-wait (job, stage) pair per job to the p95.
    """
    if not stages:
        raise ValueError("at least one stage is needed")
    if waitless_stages < 0:
        raise ValueError("waitless_stages must be >= 0")
    counts = whole_counts(arrivals_per_second)
    arrivals: Sequence[float] = traces.arrival_times(counts)
    origin = list(range(len(arrivals)))  # stage-local job -> index of the first-stage job
    first_arrivals = arrivals
    total_wait = [0.0] * len(arrivals)
    pair_waits: list[float] = []  # one per (job, modelled stage)
    outcomes = []
    previous: Sequence[float] | None = None
    for index, model in enumerate(stages):
        controller = model.controller
        if isinstance(controller, OursController) and controller.config.policy.upstream_stages:
            controller = dataclasses.replace(controller, upstream_arrivals=previous)
        raw = engine.simulate(
            arrivals,
            controller,
            model.service,
            startup_s=startup_s,
            seed=seed + 7919 * index,
            horizon_s=float(len(counts)),
            max_tail_s=max_tail_s,
            record_completions=True,
        )
        done_at, started_at = raw.done_at, raw.started_at
        assert done_at is not None and started_at is not None  # record_completions=True
        if raw.completed != len(arrivals):
            raise ValueError(
                f"stage {model.stage!r} did not drain within {max_tail_s:g} s after the load"
            )
        latencies = [done_at[j] - arrivals[j] for j in range(len(arrivals))]
        busy = sum(done_at[j] - started_at[j] for j in range(len(arrivals)))
        for j in range(len(arrivals)):
            wait = started_at[j] - arrivals[j]
            total_wait[origin[j]] += wait
            pair_waits.append(wait)
        outcomes.append(
            StageOutcome(
                stage=model.stage,
                scaler=model.scaler or model.stage,
                latency=Percentiles.of(latencies),
                queue_wait=Percentiles.of(list(raw.waits)),
                max_replicas=raw.max_replicas,
                replica_seconds=raw.replica_seconds,
                first_scale_up_s=None
                if isinstance(controller, Scripted)
                else next((t for t, r in raw.scale_log if r > 0), None),
                utilization=busy / raw.replica_seconds if raw.replica_seconds else 0.0,
            )
        )
        previous = arrivals
        order = sorted(range(len(arrivals)), key=done_at.__getitem__)
        arrivals = array("d", (done_at[j] for j in order))
        origin = [origin[j] for j in order]
    # After the last stage, `arrivals` holds completion times in order and `origin` their jobs.
    end_to_end = [arrivals[i] - first_arrivals[origin[i]] for i in range(len(arrivals))]
    jobs = len(first_arrivals)
    last = arrivals[-1] if jobs else 0.0
    span = last - (first_arrivals[0] if jobs else 0.0)
    return StagedResult(
        jobs=jobs,
        done=jobs,
        throughput_per_second=jobs / span if span > 0 else 0.0,
        producer_rate_per_second=jobs / len(counts) if counts else 0.0,
        end_to_end=Percentiles.of(end_to_end),
        queue_wait_p95_seconds=_p95_with_zeros(pair_waits, jobs * waitless_stages),
        drain_seconds=max(last - len(counts), 0.0),
        stages=tuple(outcomes),
        job_queue_wait_p95_seconds=percentile(sorted(total_wait), 95),
    )


def _p95_with_zeros(waits: list[float], zeros: int) -> float:
    """Nearest-rank p95 of `waits` plus `zeros` zero waits, without building the zeros."""
    total = len(waits) + zeros
    if total == 0:
        return 0.0
    rank = max(math.ceil(0.95 * total), 1)  # as sim.results.percentile
    if rank <= zeros:
        return 0.0  # waits are >= 0: the zeros come first
    waits.sort()
    return float(max(waits[rank - zeros - 1], 0.0))
