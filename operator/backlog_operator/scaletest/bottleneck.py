"""Bottleneck selection: the stage with the largest share of the run's queue wait.

Pure. Queue wait is where jobs sat ready but unclaimed, so the stage that holds
most of it is the one whose capacity limits the pipeline. Its utilization is the
busy handler-seconds of the stages its scaler serves per replica-second of that
scaler (with N concurrent handlers per worker, up to N). Called by
scaletest/analysis.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StageLoad:
    stage: str
    queue_wait_seconds: float  # summed over the run's jobs
    service_seconds: float  # summed busy time


@dataclass(frozen=True)
class Bottleneck:
    stage: str
    share: float  # of the total queue wait, 0..1
    utilization: float | None  # None when no scaler serves the stage


def utilization(
    stage: str,
    loads: Sequence[StageLoad],
    scaler_stages: Mapping[str, Sequence[str]],
    replica_seconds: Mapping[str, float],
) -> float | None:
    """Busy seconds per replica-second of the scaler serving `stage`."""
    for scaler, stages in scaler_stages.items():
        if stage not in stages:
            continue
        capacity = replica_seconds.get(scaler, 0.0)
        if capacity <= 0:
            return None
        busy = sum(load.service_seconds for load in loads if load.stage in stages)
        return busy / capacity
    return None


def select(
    loads: Sequence[StageLoad],
    scaler_stages: Mapping[str, Sequence[str]],
    replica_seconds: Mapping[str, float],
) -> Bottleneck | None:
    """The stage holding the most queue wait; None when nothing ever waited."""
    total = sum(max(load.queue_wait_seconds, 0.0) for load in loads)
    if total <= 0:
        return None
    # Ties go to the earlier stage in `loads` (pipeline order): it starves the rest.
    worst = max(loads, key=lambda load: load.queue_wait_seconds)
    return Bottleneck(
        stage=worst.stage,
        share=worst.queue_wait_seconds / total,
        utilization=utilization(worst.stage, loads, scaler_stages, replica_seconds),
    )
