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
_INF = math.inf


@dataclass(frozen=True, slots=True)
class Demand:
    """The unrounded replicas the signals call for, and how they were computed.

    `terms` are the numbers behind `basis`: QueueWait's (serve, drain), or
    (ready, in_flight, backlog_per_replica) when sized by count. `basis` is formatted
    only when read: decide runs many times a second and rarely needs the text.
    """

    replicas: float
    arrival_rate_per_s: float  # the rate used (max of local and upstream flow)
    service_time_s: float | None  # the estimate used; None when unknown
    type: PolicyType
    terms: tuple[float, ...]

    @property
    def basis(self) -> str:
        """A short explanation, e.g. "QueueWait: serve 6.9 + drain 3.6"."""
        if self.type is PolicyType.BACKLOG_PER_REPLICA:
            ready, in_flight, per_replica = self.terms
            return f"BacklogPerReplica: ({ready}+{in_flight})/{per_replica:g}"
        if self.service_time_s is None:
            ready, in_flight, per_replica = self.terms
            return f"QueueWait, service time unknown: ({ready}+{in_flight})/{per_replica:g}"
        serve, drain = self.terms
        return f"QueueWait: serve {serve:.1f} + drain {drain:.1f}"


def _clean(value: float | None) -> float | None:
    """A usable non-negative finite number, or None (NULLs, NaN and negatives are unknown)."""
    # One chained comparison rejects NaN, infinities and negatives alike.
    return value if value is not None and 0 <= value < _INF else None


def estimate_service_time(signals: Signals) -> float | None:
    """Seconds one replica spends per job: the measured figure, or None when unknown.

    No estimate from in_flight / completion_rate (Little's law on the stage): with one
    job in flight it swings from "unknown" to a tiny time and made the replica count fall
    as the backlog grew; the count-based fallback is monotone and the measured figure
    arrives with the first stage_done event anyway.
    """
    measured = signals.service_time_s
    if measured is not None and 0 < measured < _INF:
        return measured
    return None


def arrival_rate(policy: PolicySpec, signals: Signals) -> float:
    """Jobs per second landing on the stage; with upstreamStages, the upstream flow counts.

    max, not sum: in steady state the upstream flow *is* this stage's arrivals (the same
    jobs), so a sum would double them; the max looks ahead when a burst is upstream.
    """
    local = signals.arrival_rate_per_s
    if local is None or not 0 < local < _INF:  # as `_clean(...) or 0.0`
        local = 0.0
    if not policy.upstream_stages:
        return local
    upstream = _clean(signals.upstream_arrival_rate_per_s) or 0.0
    return max(local, upstream)


# Demand's fields in order, as a plain tuple (see `terms`).
Terms = tuple[float, float, float | None, PolicyType, tuple[float, ...]]


def compute(policy: PolicySpec, signals: Signals) -> Demand:
    """The replicas the signals call for under `policy` (unrounded, >= 0)."""
    return Demand(*terms(policy, signals))


def terms(policy: PolicySpec, signals: Signals) -> Terms:
    """`compute`'s fields as a plain tuple: decide's hot path skips building a Demand."""
    ready = signals.ready if signals.ready > 0 else 0
    in_flight = signals.in_flight if signals.in_flight > 0 else 0
    rate = arrival_rate(policy, signals)
    per_replica = policy.backlog_per_replica
    if policy.type is PolicyType.BACKLOG_PER_REPLICA:
        # KEDA's AverageValue: in-flight work counts, or busy workers would look idle.
        return (
            (ready + in_flight) / per_replica,
            rate,
            _clean(signals.service_time_s),
            PolicyType.BACKLOG_PER_REPLICA,
            (ready, in_flight, per_replica),
        )
    service = estimate_service_time(signals)
    if service is None:
        # No finished work yet: nothing to apply Little's law to. Size by count,
        # which is what KEDA users would expect, and say so.
        return (
            (ready + in_flight) / per_replica,
            rate,
            None,
            PolicyType.QUEUE_WAIT,
            (ready, in_flight, per_replica),
        )
    wait = policy.target_queue_wait_s
    # Little's law: rate x service time replicas are busy on average; dividing by the
    # target utilization adds headroom (default 1.0: the drain term below is the headroom).
    serve = rate * service / policy.target_utilization
    # A running job holds its replica for about its remaining service time, ~S; averaged
    # over the drain horizon W that is min(1, S/W) replicas. Short jobs finish within a
    # scale-in's grace anyway, so this floor only binds for long jobs (or a stale rate),
    # where terminating busy pods would release long jobs for a rerun.
    held = in_flight * (1.0 if service >= wait else service / wait)
    if held > serve:
        serve = held
    # Little's law on the queue: a queue of rate x W/2 jobs means a mean wait of W/2.
    # That many may stand; only the excess is drained, over W seconds.
    excess = ready - rate * wait * 0.5
    drain = excess * service / wait if excess > 0 else 0.0
    total = serve + drain
    return (
        total if total < _MAX_DEMAND else _MAX_DEMAND,
        rate,
        service,
        PolicyType.QUEUE_WAIT,
        (serve, drain),
    )
