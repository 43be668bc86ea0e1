"""The calibration hook: does the simulator agree with a live ScaleTest on the same load?

Called by whoever runs the calibration (issue 6: one short live ScaleTest on the local
cluster, then `staged.simulate_stages` on the same profile, service times and startup
delay; docs/decisions/0014). Both sides are `status.results`-shaped mappings (a live
run's `Results.to_status()`, a simulated `StagedResult.to_status()`); the hook reports
the relative error of each compared figure and whether it is within tolerance (25 %).

The helpers below derive the simulator's inputs from a live run's timeline (pure, so the
e2e test tests/e2e/test_calibration.py and unit tests share them): per-second arrivals
from job creation offsets, the pod start delay from scale-ups and first claims, and
the per-job cycle a worker really pays (service time plus its claim round trip).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_METRICS = ("drainSeconds", "queueWaitP95Seconds")
DEFAULT_TOLERANCE = 0.25


@dataclass(frozen=True)
class Agreement:
    """One figure, simulated vs live. `relative_error` is |sim - live| / live."""

    metric: str
    simulated: float | None
    live: float | None
    relative_error: float | None
    within: bool


def _get(results: Mapping[str, Any], dotted: str) -> float | None:
    value: Any = results
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


def compare_with_live(
    simulated: Mapping[str, Any],
    live: Mapping[str, Any],
    metrics: Sequence[str] = DEFAULT_METRICS,
    tolerance: float = DEFAULT_TOLERANCE,
    floor: float = 1.0,
) -> tuple[Agreement, ...]:
    """Compare `metrics` (dotted paths, e.g. "latency.endToEnd.p95") of two result mappings.

    Relative errors are taken against max(live, `floor`) seconds, so a 0.2 s vs 0.1 s
    queue wait does not count as a 100 % miss. A figure missing on either side fails.
    """
    out = []
    for metric in metrics:
        sim, real = _get(simulated, metric), _get(live, metric)
        if sim is None or real is None:
            out.append(Agreement(metric, sim, real, None, False))
            continue
        error = abs(sim - real) / max(abs(real), floor)
        out.append(Agreement(metric, sim, real, error, error <= tolerance))
    return tuple(out)


def calibrated(agreements: Sequence[Agreement]) -> bool:
    """True when every compared figure is within tolerance."""
    return bool(agreements) and all(a.within for a in agreements)


def per_second_counts(offsets: Sequence[float], seconds: int) -> list[int]:
    """Arrivals per second [0, `seconds`) from offsets (seconds since the load began).

    Offsets before 0 count in second 0 and offsets past the end in the last second, so
    the total is exact (the simulator must see every live job).
    """
    counts = [0] * max(seconds, 1)
    for offset in offsets:
        counts[min(max(int(offset), 0), len(counts) - 1)] += 1
    return counts


def startup_delays(
    scale_changes: Sequence[tuple[float, int]], first_claims: Sequence[float]
) -> list[float]:
    """Seconds from the scale-up that asked for each pod to that pod's first claim.

    `scale_changes` are (time, new spec.replicas) in time order, from 0 replicas; each
    increase opens replica slots, and the k-th pod to claim fills the k-th slot (pods
    start in the order they were asked for, give or take; a median over pods absorbs
    swaps). Only the scale-ups before the first scale-down count: after one, which pod
    went is unknown. Pods beyond the slots are ignored.
    """
    slots: list[float] = []
    current = 0
    for at, replicas in scale_changes:
        if replicas < current:
            break
        slots.extend([at] * (replicas - current))
        current = replicas
    claims = sorted(first_claims)
    return [claim - slot for slot, claim in zip(slots, claims, strict=False)]


def mean_cycle(starts_by_worker: Mapping[str, Sequence[float]]) -> float | None:
    """Mean gap between consecutive job starts of the same worker (one job at a time).

    While a backlog waits, a concurrency-1 worker starts its next job as soon as the
    previous one is done and the next claim returned: the gap is the service time the
    pipeline delivers per job, claim round trip included. None without two starts.
    """
    gaps: list[float] = []
    for starts in starts_by_worker.values():
        ordered = sorted(starts)
        gaps.extend(b - a for a, b in itertools.pairwise(ordered))
    return sum(gaps) / len(gaps) if gaps else None
