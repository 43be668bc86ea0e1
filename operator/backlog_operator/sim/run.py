"""Run one or several policies on the same trace and service times, side by side.

Called by sim.cli and the benchmark. Every policy sees the same jobs (same arrival
instants and, through the seed, the same job sizes), so differences are the policy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backlog_operator.sim import engine, results, traces
from backlog_operator.sim.engine import Controller
from backlog_operator.sim.service import ServiceTime


@dataclass(frozen=True)
class RunSettings:
    """Inputs shared by every policy of a comparison."""

    service: ServiceTime
    startup_s: float = 5.0
    seed: int = 0
    max_tail_s: float = 3600.0


def compare(
    trace: traces.Trace, controllers: Sequence[Controller], settings: RunSettings
) -> dict[str, results.PolicyResult]:
    """Each controller on `trace`; results keyed by controller name, in order.

    Runs last until drained and settled; when a policy keeps replicas at rest
    (minReplicas > 0), all runs are extended to the same end so replica-seconds compare.
    """
    arrivals = traces.arrival_times(trace.arrivals)
    raw = {c.name: _one(arrivals, c, settings, trace.seconds, 0.0) for c in controllers}
    end = max((r.end_s for r in raw.values()), default=0.0)
    for c in controllers:
        if c.floor > 0 and raw[c.name].end_s < end:
            raw[c.name] = _one(arrivals, c, settings, trace.seconds, end)
    return {name: results.summarize(name, r) for name, r in raw.items()}


def _one(
    arrivals: Sequence[float],
    controller: Controller,
    settings: RunSettings,
    horizon: float,
    min_end: float,
) -> engine.EngineResult:
    return engine.simulate(
        arrivals,
        controller,
        settings.service,
        startup_s=settings.startup_s,
        seed=settings.seed,
        horizon_s=horizon,
        max_tail_s=settings.max_tail_s,
        min_end_s=min_end,
    )
