"""The calibration hook: does the simulator agree with a live ScaleTest on the same load?

Called by whoever runs the calibration (issue 6: one short live ScaleTest on the local
cluster, then `staged.simulate_stages` on the same profile, service times and startup
delay; docs/decisions/0014). Both sides are `status.results`-shaped mappings (a live
run's `Results.to_status()`, a simulated `StagedResult.to_status()`); the hook reports
the relative error of each compared figure and whether it is within tolerance (25 %).
"""

from __future__ import annotations

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
