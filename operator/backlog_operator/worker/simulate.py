"""Simulated stage handlers: service times and failures drawn from the job's payload.

Called by worker/base.py for every stage without a real handler. The payload's
`workload` (written by ScaleTest, see DESIGN.md) looks like
  {"serviceTime": {"default": {"meanSeconds": 0.2, "distribution": "Exponential"},
                   "stages": {"parsing": {"meanSeconds": 2.0}}},
   "failureRate": 0.01}
Stages not listed use `default`; without any `serviceTime` the built-in means
below apply (the original pipeline's shape: parsing and embedding slow,
validation and buffering steps fast). `failureRate` is a number or
{"default": x, "stages": {...}}.
"""

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

DISTRIBUTIONS = ("Constant", "Exponential", "LogNormal")


@dataclass(frozen=True)
class ServiceTime:
    """One stage's service-time distribution; `cv` (std / mean) matters for LogNormal."""

    mean_seconds: float
    distribution: str = "Exponential"
    cv: float = 1.0

    def draw(self, rng: random.Random) -> float:
        """One service time in seconds (never negative)."""
        mean = max(self.mean_seconds, 0.0)
        if mean == 0.0 or self.distribution == "Constant":
            return mean
        if self.distribution == "Exponential":
            return rng.expovariate(1.0 / mean)
        # LogNormal with the requested mean and coefficient of variation
        sigma2 = math.log1p(max(self.cv, 0.0) ** 2)
        return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))


BUILTIN_SERVICE_TIMES: Mapping[str, ServiceTime] = MappingProxyType(
    {
        "queued": ServiceTime(0.02),
        "job_validated": ServiceTime(0.02),
        "parsing": ServiceTime(1.0, "LogNormal", 0.5),
        "parsed": ServiceTime(0.02),
        "parse_validated": ServiceTime(0.02),
        "chunking": ServiceTime(0.3, "LogNormal", 0.5),
        "chunks_buffered": ServiceTime(0.02),
        "chunked": ServiceTime(0.02),
        "embedding": ServiceTime(1.0, "LogNormal", 0.5),
        "embeddings_buffered": ServiceTime(0.02),
        "embedded": ServiceTime(0.02),
    }
)


class SimulatedFailure(RuntimeError):
    """The failure a simulated handler raises with probability `failureRate`."""


@dataclass(frozen=True)
class StageWork:
    """What the simulated handler does for one job at one stage."""

    service_time: ServiceTime
    failure_rate: float


def _service_time(spec: Any, fallback: ServiceTime) -> ServiceTime:
    if not isinstance(spec, Mapping):
        return fallback
    distribution = spec.get("distribution", fallback.distribution)
    if distribution not in DISTRIBUTIONS:
        distribution = fallback.distribution
    return ServiceTime(
        mean_seconds=float(spec.get("meanSeconds", fallback.mean_seconds)),
        distribution=str(distribution),
        cv=float(spec.get("cv", fallback.cv)),
    )


def _failure_rate(spec: Any, stage: str) -> float:
    if isinstance(spec, Mapping):
        stages = spec.get("stages")
        if isinstance(stages, Mapping) and stage in stages:
            spec = stages[stage]
        else:
            spec = spec.get("default", 0.0)
    try:
        return min(max(float(spec), 0.0), 1.0)
    except (TypeError, ValueError):
        return 0.0


def stage_work(payload: Mapping[str, Any] | None, stage: str) -> StageWork:
    """Service time and failure rate for `stage` from a job payload; malformed parts ignored."""
    workload = (payload or {}).get("workload")
    if not isinstance(workload, Mapping):
        workload = {}
    builtin = BUILTIN_SERVICE_TIMES.get(stage, ServiceTime(0.02))
    service = workload.get("serviceTime")
    if isinstance(service, Mapping):
        default = _service_time(service.get("default"), builtin)
        stages = service.get("stages")
        per_stage = stages.get(stage) if isinstance(stages, Mapping) else None
        chosen = _service_time(per_stage, default)
    else:
        chosen = builtin
    return StageWork(chosen, _failure_rate(workload.get("failureRate", 0.0), stage))


def draw(work: StageWork, *, scale: float, rng: random.Random) -> tuple[float, bool]:
    """(seconds to spend, whether to fail) for one attempt; `scale` multiplies the time."""
    seconds = work.service_time.draw(rng) * scale if scale > 0 else 0.0
    fails = work.failure_rate > 0 and rng.random() < work.failure_rate
    return seconds, fails


def plan(
    payload: Mapping[str, Any] | None, stage: str, *, scale: float, rng: random.Random
) -> tuple[float, bool]:
    """draw() for a payload's workload at `stage`."""
    return draw(stage_work(payload, stage), scale=scale, rng=rng)
