"""Pool-size, maxReplicas and reaction advice from a recorded run. Pure.

`pool_advice(data, scalers)` sizes each stage (and each scaler when its stages
are known) by Little's law: busy handlers = arrival rate x mean service time,
then slots = busy / target utilization, for the load's mean rate and its peak.
`scaler_advice` flags a scaler whose desired replicas sat at their peak (or at
maxReplicas, when the BacklogScaler spec is known) while jobs waited, and slow
first reactions. Called by report/sections.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backlog_operator.report import model

TARGET_UTILIZATION = 0.8
SLOW_REACTION_SECONDS = 15.0  # KEDA's default polling is 30 s; we aim well below
PLATEAU_SHARE = 0.25
DEFAULT_WAIT_LIMIT = 5.0  # seconds of p95 queue wait, when the spec sets no SLO for it


@dataclass(frozen=True)
class ScalerSpec:
    """What the report knows of a BacklogScaler when the cluster could be read."""

    stages: tuple[str, ...]
    min_replicas: int
    max_replicas: int

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ScalerSpec:
        """From a BacklogScaler spec (CRD defaults for what is missing)."""
        return cls(
            stages=tuple((spec.get("source") or {}).get("stages") or ()),
            min_replicas=int(spec.get("minReplicas", 0)),
            max_replicas=int(spec.get("maxReplicas", 10)),
        )


@dataclass(frozen=True)
class PoolSize:
    name: str  # a stage, or a scaler
    mean_service_seconds: float
    busy_mean: float  # handlers busy on average at the load's mean rate
    slots_mean: int  # handler slots (replicas x worker concurrency) at the target utilization
    slots_peak: int | None  # the same at the profile's peak rate


def mean_rate(data: model.RunData) -> float | None:
    value = data.info.results.get("throughputPerSecond")
    return float(value) if value else None


def peak_rate(data: model.RunData) -> float | None:
    load = data.info.spec.get("load") or {}
    factor = float(load.get("loadFactor", 1.0))
    peak = load.get("peakRatePerSecond")
    if peak is None:
        steps = load.get("steps") or []
        peak = max((s.get("ratePerSecond", 0) for s in steps), default=None)
    return None if peak is None else float(peak) * factor


def _slots(busy: float) -> int:
    return max(1, math.ceil(busy / TARGET_UTILIZATION - 1e-9))


def pool_advice(
    data: model.RunData, scalers: Mapping[str, ScalerSpec] | None = None
) -> tuple[PoolSize, ...]:
    rate, peak = mean_rate(data), peak_rate(data)
    if not rate:
        return ()
    service = {
        s.stage: (s.service_total or 0.0) / s.completions
        for s in data.stage_stats("load")
        if s.completions and s.service_total
    }
    groups: dict[str, Sequence[str]] = (
        {name: spec.stages for name, spec in scalers.items()}
        if scalers
        else {stage: (stage,) for stage in service}
    )
    out = []
    for name, stages in groups.items():
        mean_service = sum(service.get(s, 0.0) for s in stages)
        if mean_service <= 0:
            continue
        busy = rate * mean_service
        out.append(
            PoolSize(
                name=name,
                mean_service_seconds=mean_service,
                busy_mean=busy,
                slots_mean=_slots(busy),
                slots_peak=_slots(peak * mean_service) if peak else None,
            )
        )
    return tuple(out)


def scaler_advice(
    data: model.RunData, scalers: Mapping[str, ScalerSpec] | None = None
) -> tuple[str, ...]:
    """One sentence per finding about replicas and reaction; empty when nothing stands out."""
    out = []
    waited = float(data.info.results.get("queueWaitP95Seconds") or 0.0)
    slo_wait = (data.info.spec.get("slo") or {}).get("p95QueueWaitSeconds")
    # Jobs "waited" when the p95 queue wait passed the SLO's target (or 5 s without one).
    too_long = waited > float(slo_wait if slo_wait is not None else DEFAULT_WAIT_LIMIT)
    for name in data.scalers:
        during = [
            s.desired
            for s in data.scaler_samples
            if s.scaler == name and s.desired is not None and s.at >= 0
        ]
        if not during:
            continue
        top = max(during)
        share = sum(d == top for d in during) / len(during)
        spec = (scalers or {}).get(name)
        capped = spec is not None and top >= spec.max_replicas
        plateau = spec is None and top > 0 and share >= PLATEAU_SHARE
        if not (capped or plateau):
            continue
        cap = f"maxReplicas={top}" if capped else f"{top} (its maxReplicas?)"
        if too_long:
            out.append(
                f"{name}: desired replicas sat at {cap} for {share:.0%} of the load while the "
                f"p95 queue wait reached {waited:.1f} s: raise maxReplicas (e.g. to {top * 2}) "
                "if the database has room."
            )
        elif capped:
            out.append(
                f"{name}: desired replicas sat at maxReplicas={top} for {share:.0%} of the load "
                f"with a p95 queue wait of only {waited:.1f} s: the cap was enough. If "
                "replica-seconds matter, compare with the slots the pool-size table needs; a "
                "larger targetQueueWaitSeconds trims them."
            )
    first = data.info.results.get("timeToFirstScaleSeconds")
    # Late only matters if jobs waited meanwhile (pools kept from the baseline need no rise).
    if first is not None and float(first) > SLOW_REACTION_SECONDS and too_long:
        out.append(
            f"First scale-up came {float(first):.1f} s after the load began: enable "
            "`listen: true` (NOTIFY wake-ups) or lower pollIntervalSeconds."
        )
    drain = data.info.results.get("drainSeconds")
    max_drain = (data.info.spec.get("slo") or {}).get("maxDrainSeconds")
    if drain is not None and max_drain is not None and float(drain) > float(max_drain):
        out.append(
            f"Draining took {float(drain):.0f} s (SLO {float(max_drain):.0f} s): the scale-down "
            "stabilization or a low maxReplicas kept capacity short after the load."
        )
    return tuple(out)
