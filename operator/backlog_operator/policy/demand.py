"""Demand: how many replicas the backlog and the arrival rate call for, before any limit.

Called by `policy.decision.decide` on every evaluation; the simulator reaches it
through `decide` too. Pure arithmetic: the unrounded replica count and a short
human explanation of the terms. The reasoning is in docs/decisions/0005-policy-math.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backlog_operator.policy.types import PolicySpec, PolicyType, Signals

# Far above any maxReplicas; keeps absurd readings (a huge service time) finite.
_MAX_DEMAND = 1e9


@dataclass(frozen=True, slots=True)
class Demand:
    """The unrounded replicas the signals call for, and how they were computed."""

    replicas: float
    basis: str  # e.g. "QueueWait: serve 6.9 + drain 3.6"
    arrival_rate_per_s: float  # the rate used (max of local and upstream flow)
    service_time_s: float | None  # the estimate used; None when unknown


def _clean(value: float | None) -> float | None:
    """A usable non-negative finite number, or None (NULLs, NaN and negatives are unknown)."""
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return value


def estimate_service_time(signals: Signals) -> float | None:
    """Seconds one replica spends per job: the measured figure, else Little's law, else None.

    Little's law on the stage itself: in_flight = completion_rate x service_time, so
    a stage that completes work but has no measured service time still gets an estimate.
    """
    measured = _clean(signals.service_time_s)
    if measured is not None and measured > 0:
        return measured
    completion = _clean(signals.completion_rate_per_s)
    if completion is not None and completion > 0 and signals.in_flight > 0:
        estimate = signals.in_flight / completion
        return estimate if math.isfinite(estimate) else None
    return None


def arrival_rate(policy: PolicySpec, signals: Signals) -> float:
    """Jobs per second landing on the stage; with upstreamStages, the upstream flow counts.

    max, not sum: in steady state the upstream flow *is* this stage's arrivals (the same
    jobs), so a sum would double them; the max looks ahead when a burst is upstream.
    """
    local = _clean(signals.arrival_rate_per_s) or 0.0
    if not policy.upstream_stages:
        return local
    upstream = _clean(signals.upstream_arrival_rate_per_s) or 0.0
    return max(local, upstream)


def compute(policy: PolicySpec, signals: Signals) -> Demand:
    """The replicas the signals call for under `policy` (unrounded, >= 0)."""
    ready = max(signals.ready, 0)
    in_flight = max(signals.in_flight, 0)
    rate = arrival_rate(policy, signals)
    per_replica = policy.backlog_per_replica
    if policy.type is PolicyType.BACKLOG_PER_REPLICA:
        # KEDA's AverageValue: in-flight work counts, or busy workers would look idle.
        return Demand(
            replicas=(ready + in_flight) / per_replica,
            basis=f"BacklogPerReplica: ({ready}+{in_flight})/{per_replica:g}",
            arrival_rate_per_s=rate,
            service_time_s=_clean(signals.service_time_s),
        )
    service = estimate_service_time(signals)
    if service is None:
        # No finished work yet: nothing to apply Little's law to. Size by count,
        # which is what KEDA users would expect, and say so.
        return Demand(
            replicas=(ready + in_flight) / per_replica,
            basis=f"QueueWait, service time unknown: ({ready}+{in_flight})/{per_replica:g}",
            arrival_rate_per_s=rate,
            service_time_s=None,
        )
    # Little's law: rate x service time replicas are busy on average; divide by the
    # target utilization for headroom. In-flight jobs each hold a replica right now.
    serve = max(rate * service / policy.target_utilization, float(in_flight))
    # Drain term: `ready` jobs x service seconds, spread over the target wait.
    drain = ready * service / policy.target_queue_wait_s
    return Demand(
        replicas=min(serve + drain, _MAX_DEMAND),
        basis=f"QueueWait: serve {serve:.1f} + drain {drain:.1f}",
        arrival_rate_per_s=rate,
        service_time_s=service,
    )
