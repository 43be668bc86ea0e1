"""SLO evaluation: one verdict per SLO the spec sets, and the run's verdict.

Pure: `evaluate(slo, observed)` compares each target with the observed figure
(an upper bound for latencies, drain time, lost and duplicate jobs; a lower
bound for throughput). A missing observation (no job finished, so no p95) never
meets its SLO. Called by scaletest/analysis.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backlog_operator.api.scaletest import Slo
from backlog_operator.scaletest.phases import Verdict


@dataclass(frozen=True)
class Observed:
    """The run's figures an SLO can be checked against (None: could not be measured)."""

    p95_end_to_end_seconds: float | None = None
    p95_queue_wait_seconds: float | None = None
    drain_seconds: float | None = None
    lost_jobs: int | None = None
    duplicate_completions: int | None = None
    throughput_per_second: float | None = None


@dataclass(frozen=True)
class SloResult:
    name: str
    target: float
    observed: float | None
    met: bool

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "target": self.target, "met": self.met}
        if self.observed is not None:
            out["observed"] = round(self.observed, 3)
        return out


# (spec field, Slo attribute, Observed attribute, True when the target is a ceiling)
_CHECKS = (
    ("p95EndToEndSeconds", "p95_end_to_end_seconds", "p95_end_to_end_seconds", True),
    ("p95QueueWaitSeconds", "p95_queue_wait_seconds", "p95_queue_wait_seconds", True),
    ("maxDrainSeconds", "max_drain_seconds", "drain_seconds", True),
    ("maxLostJobs", "max_lost_jobs", "lost_jobs", True),
    ("maxDuplicateCompletions", "max_duplicate_completions", "duplicate_completions", True),
    ("minThroughputPerSecond", "min_throughput_per_second", "throughput_per_second", False),
)


def evaluate(slo: Slo, observed: Observed) -> tuple[SloResult, ...]:
    """One SloResult per SLO set in the spec, in a fixed order."""
    results = []
    for name, slo_attr, observed_attr, ceiling in _CHECKS:
        target = getattr(slo, slo_attr)
        if target is None:
            continue
        value = getattr(observed, observed_attr)
        if value is None:
            met = False
        else:
            met = float(value) <= float(target) if ceiling else float(value) >= float(target)
        results.append(SloResult(name, float(target), None if value is None else float(value), met))
    return tuple(results)


def verdict(results: Sequence[SloResult]) -> Verdict:
    """Passed only when every SLO is met (no SLO at all passes)."""
    return Verdict.PASSED if all(r.met for r in results) else Verdict.FAILED


def describe_failures(results: Sequence[SloResult]) -> str:
    """`p95EndToEndSeconds: observed 12.3 > target 0.001; ...` for the unmet SLOs."""
    parts = []
    for result in results:
        if result.met:
            continue
        observed = "not measured" if result.observed is None else f"observed {result.observed:g}"
        parts.append(f"{result.name}: {observed}, target {result.target:g}")
    return "; ".join(parts)
