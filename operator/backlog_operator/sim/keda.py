"""KEDA + HPA with default settings, as a simulator controller (`--compare keda-default`).

Called by sim.run; sim.keda_spec builds a `KedaConfig` from a ScaledObject-like YAML.
Each rule cites its source (/work/shared/notes/keda-hpa-model.md, KEDA's ScaledObject
reference and scale executor, Kubernetes' HPA docs and replica calculator):

1. KEDA polls the trigger every `pollingInterval` (default 30 s) and alone moves 0 -> 1
   and 1 -> 0 (keda pkg/scaling/executor/scale_scaledobjects.go).
2. A trigger is active when its value is strictly above `activationTargetQueryValue`
   (default 0). From 0 KEDA sets max(minReplicaCount, 1) whatever the value.
3. `cooldownPeriod` (default 300 s) counts from the last active poll and only gates
   going to zero; KEDA then sets 0 directly (minReplicaCount 0 only).
4. 1 <-> N is the HPA's: a sync every 15 s (--horizontal-pod-autoscaler-sync-period)
   reading the metric live through KEDA's metrics server; at 0 replicas it does nothing
   (ScalingDisabled). The HPA's minReplicas is max(minReplicaCount, 1).
5. AverageValue: desired = ceil(metric / target), only when
   |metric / (target x current) - 1| > 0.1 (tolerance; replica_calculator.go).
6. Behavior defaults (HPA docs): scale-up stabilization 0 s, max(100 %, 4 pods) per 15 s;
   scale-down stabilization 300 s (highest recommendation in the window), 100 % per 15 s.
   Stabilization and rate limits follow horizontal.go (stabilizeRecommendationWithBehaviors,
   convertDesiredReplicasWithBehaviorRate); the window starts seeded with the current size.
7. Scale-in goes through the ReplicaSet: arbitrary ready pods, in-flight work lost
   (engine ScaleIn.KILL).

The metric is what a KEDA postgresql trigger usually counts: ready + in-flight rows.
Timers: KEDA polls at 0, 30, 60 ... and the HPA syncs at 0, 15, 30 ...; on a tie the HPA
goes first, so a step is first seen by KEDA's next poll and the HPA's first step comes
one sync later. Shift them with `keda_phase_s` / `hpa_phase_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from backlog_operator.policy.types import (
    RatePolicyType,
    ScalingRules,
    SelectPolicy,
    hpa_scale_down,
    hpa_scale_up,
)
from backlog_operator.sim.engine import ScaleIn, Step, View

_TIE = 1e-9


@dataclass(frozen=True)
class KedaConfig:
    """A ScaledObject with one postgresql trigger; defaults are KEDA's and the HPA's."""

    target_value: float = 10.0  # triggers[].metadata.targetQueryValue (required in KEDA)
    activation_value: float = 0.0  # activationTargetQueryValue
    polling_interval_s: float = 30.0
    cooldown_s: float = 300.0
    min_replicas: int = 0  # minReplicaCount
    max_replicas: int = 100  # maxReplicaCount
    hpa_sync_s: float = 15.0
    tolerance: float = 0.1
    scale_up: ScalingRules = field(default_factory=hpa_scale_up)
    scale_down: ScalingRules = field(default_factory=hpa_scale_down)
    keda_phase_s: float = 0.0
    hpa_phase_s: float = 0.0


@dataclass(frozen=True, slots=True)
class KedaState:
    """KEDA's last active time, the HPA's recommendations and scale events, the timers."""

    next_poll: float
    next_sync: float
    last_active: float | None = None
    recommendations: tuple[tuple[float, int], ...] = ()  # (time, replicas)
    up_events: tuple[tuple[float, int], ...] = ()  # (time, replicas added)
    down_events: tuple[tuple[float, int], ...] = ()  # (time, replicas removed)


@dataclass(frozen=True)
class KedaController:
    """Drives `KedaConfig` in the engine: KEDA's poll loop plus the HPA's sync loop."""

    config: KedaConfig = field(default_factory=KedaConfig)
    name: str = "keda-default"
    scale_in: ScaleIn = ScaleIn.KILL
    window_s: float = 60.0  # unused: KEDA reads only the current count
    wake_debounce_s: float | None = None  # KEDA has no wake-ups

    @property
    def floor(self) -> int:
        return self.config.min_replicas

    def start(self) -> tuple[KedaState, float]:
        c = self.config
        return KedaState(next_poll=c.keda_phase_s, next_sync=c.hpa_phase_s), min(
            c.keda_phase_s, c.hpa_phase_s
        )

    def step(self, state: KedaState, view: View) -> Step:
        c, now = self.config, view.now
        metric = view.ready + view.in_flight
        desired = view.target
        if now >= state.next_sync - _TIE:
            if desired > 0:
                desired, state = hpa_sync(c, state, metric, desired, now)
            state = replace(state, next_sync=state.next_sync + c.hpa_sync_s)
        if now >= state.next_poll - _TIE:
            active = metric > c.activation_value
            last = now if active else state.last_active
            if desired == 0 and active:
                desired = max(c.min_replicas, 1)
            elif (
                desired > 0
                and not active
                and c.min_replicas == 0
                and (last is None or now - last >= c.cooldown_s)
            ):
                desired = 0
            next_poll = state.next_poll + c.polling_interval_s
            state = replace(state, last_active=last, next_poll=next_poll)
        return Step(desired, min(state.next_poll, state.next_sync), state)


def hpa_sync(
    c: KedaConfig, state: KedaState, metric: float, current: int, now: float
) -> tuple[int, KedaState]:
    """One HPA sync on an AverageValue external metric; returns the new replicas and state."""
    low, high = max(c.min_replicas, 1), c.max_replicas
    ratio = metric / (c.target_value * current)
    raw = math.ceil(metric / c.target_value) if abs(ratio - 1) > c.tolerance else current
    down_cut = now - c.scale_down.stabilization_window_s
    up_cut = now - c.scale_up.stabilization_window_s
    recs = state.recommendations or ((now, current),)  # maybeInitScaleDownStabilizationWindow
    up_rec = down_rec = raw
    for at, rec in recs:
        if at > up_cut:
            up_rec = min(up_rec, rec)
        if at > down_cut:
            down_rec = max(down_rec, rec)
    stabilized = min(max(current, up_rec), down_rec)
    desired = stabilized
    if stabilized > current:
        limit = max(_up_limit(current, c.scale_up, state.up_events, now), current)
        desired = min(stabilized, min(high, limit))
    elif stabilized < current:
        limit = min(_down_limit(current, c.scale_down, state.down_events, now), current)
        desired = max(stabilized, max(low, limit))
    keep = max(c.scale_up.stabilization_window_s, c.scale_down.stabilization_window_s)
    recs = (*(r for r in recs if r[0] > now - keep), (now, raw))
    up, down = state.up_events, state.down_events
    if desired > current:
        up = (*up, (now, desired - current))
    elif desired < current:
        down = (*down, (now, current - desired))
    longest = max((p.period_s for p in c.scale_up.policies + c.scale_down.policies), default=0)
    return desired, replace(
        state,
        recommendations=recs,
        up_events=tuple(e for e in up if e[0] + longest > now),
        down_events=tuple(e for e in down if e[0] + longest > now),
    )


def _changed(events: tuple[tuple[float, int], ...], period_s: float, now: float) -> int:
    # An event counts while event time + period is after now (strictly), as in horizontal.go.
    return sum(change for at, change in events if at + period_s > now)


def _up_limit(
    current: int, rules: ScalingRules, events: tuple[tuple[float, int], ...], now: float
) -> int:
    if rules.select_policy is SelectPolicy.DISABLED or not rules.policies:
        return current
    proposals = []
    for p in rules.policies:
        start = current - _changed(events, p.period_s, now)
        if p.type is RatePolicyType.PODS:
            proposals.append(start + p.value)
        else:
            proposals.append(math.ceil(start * (1 + p.value / 100)))
    return max(proposals) if rules.select_policy is SelectPolicy.MAX else min(proposals)


def _down_limit(
    current: int, rules: ScalingRules, events: tuple[tuple[float, int], ...], now: float
) -> int:
    if rules.select_policy is SelectPolicy.DISABLED or not rules.policies:
        return current
    proposals = []
    for p in rules.policies:
        start = current + _changed(events, p.period_s, now)
        if p.type is RatePolicyType.PODS:
            proposals.append(start - p.value)
        else:
            proposals.append(int(start * (1 - p.value / 100)))
    # Max means "the policy allowing the biggest change": the lowest floor.
    return min(proposals) if rules.select_policy is SelectPolicy.MAX else max(proposals)
