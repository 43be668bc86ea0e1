"""HPA-shaped behavior: stabilization windows and Pods/Percent limits per period.

Called by `policy.decision.decide`. Follows the HorizontalPodAutoscaler's
normalization (kubernetes pkg/controller/podautoscaler/horizontal.go): stabilize
the recommendation over the windows first, then limit the change relative to the
replicas at the start of each policy's period. Why and how is in
docs/decisions/0006-behavior-and-stabilization.md.
"""

from __future__ import annotations

import dataclasses
import math

from backlog_operator.policy.types import (
    Behavior,
    RatePolicyType,
    Recommendation,
    ScaleEvent,
    ScalerHistory,
    ScalingRules,
    SelectPolicy,
)


def _longest_period(behavior: Behavior) -> float:
    longest = 0.0
    for policy in behavior.scale_up.policies:
        if policy.period_s > longest:
            longest = policy.period_s
    for policy in behavior.scale_down.policies:
        if policy.period_s > longest:
            longest = policy.period_s
    return longest


def _all_after(entries: tuple[Recommendation, ...] | tuple[ScaleEvent, ...], cut: float) -> bool:
    # A plain loop: all() over a generator costs more for these few entries.
    for entry in entries:  # noqa: SIM110
        if entry.at <= cut:
            return False
    return True


def prune(history: ScalerHistory, behavior: Behavior, now: float) -> ScalerHistory:
    """Drop recommendations and events no window or period can see any more (bounded size)."""
    up, down = behavior.scale_up.stabilization_window_s, behavior.scale_down.stabilization_window_s
    window_cut = now - (up if up > down else down)
    period_cut = now - _longest_period(behavior)
    recs, ups, downs = (
        history.recommendations,
        history.scale_up_events,
        history.scale_down_events,
    )
    # Usually nothing has expired: check before building new tuples (decide runs often).
    if (
        _all_after(recs, window_cut)
        and _all_after(ups, period_cut)
        and _all_after(downs, period_cut)
    ):
        return history
    return dataclasses.replace(
        history,
        recommendations=tuple(r for r in recs if r.at > window_cut),
        scale_up_events=tuple(e for e in ups if e.at > period_cut),
        scale_down_events=tuple(e for e in downs if e.at > period_cut),
    )


def record(
    recommendations: tuple[Recommendation, ...], replicas: int, behavior: Behavior, now: float
) -> tuple[Recommendation, ...]:
    """Append a recommendation and drop the ones no future window can pick.

    Scale-down stabilization takes the highest recommendation in its window: one with a
    later recommendation at least as high never decides it again (the later one stays in
    the window longer). Likewise for scale-up and the lowest. What remains is a short
    monotone run, so decide stays cheap at many readings per second, and every future
    stabilization is unchanged (test_policy_properties.py checks it against the full list).
    """
    up_cut = now - behavior.scale_up.stabilization_window_s
    down_cut = now - behavior.scale_down.stabilization_window_s
    newest = Recommendation(at=now, replicas=replicas)
    kept = [newest]
    highest_after = lowest_after = replicas
    for rec in reversed(recommendations):
        replicas = rec.replicas
        if replicas > highest_after:
            if rec.at > down_cut:
                kept.append(rec)
            highest_after = replicas
        elif replicas < lowest_after:
            if rec.at > up_cut:
                kept.append(rec)
            lowest_after = replicas
    kept.reverse()
    return tuple(kept)


def stabilize(
    recommendation: int,
    current: int,
    recommendations: tuple[Recommendation, ...],
    behavior: Behavior,
    now: float,
) -> int:
    """HPA stabilization: scale up only to the lowest, down only to the highest
    recommendation seen within the respective window (the new one included)."""
    up_cutoff = now - behavior.scale_up.stabilization_window_s
    down_cutoff = now - behavior.scale_down.stabilization_window_s
    up_floor = recommendation
    down_ceiling = recommendation
    for rec in recommendations:
        replicas = rec.replicas
        if replicas < up_floor and rec.at > up_cutoff:
            up_floor = replicas
        if replicas > down_ceiling and rec.at > down_cutoff:
            down_ceiling = replicas
    result = current if current > up_floor else up_floor
    return result if result < down_ceiling else down_ceiling


def _change_in_period(events: tuple[ScaleEvent, ...], period_s: float, now: float) -> int:
    cutoff = now - period_s
    total = 0
    for event in events:  # a loop, not sum(generator): cheaper for a few events
        if event.at > cutoff:
            total += event.change
    return total


def _period_start(current: int, history: ScalerHistory, period_s: float, now: float) -> int:
    """Replicas at the start of the period: undo the changes made within it."""
    added = _change_in_period(history.scale_up_events, period_s, now)
    removed = _change_in_period(history.scale_down_events, period_s, now)
    return current - added + removed


def scale_up_limit(current: int, rules: ScalingRules, history: ScalerHistory, now: float) -> int:
    """The most replicas scale-up policies allow now (never below `current`)."""
    if rules.select_policy is SelectPolicy.DISABLED or not rules.policies:
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(current, history, policy.period_s, now)
        if policy.type is RatePolicyType.PODS:
            proposals.append(start + policy.value)
        else:
            # Rounded up, as HPA does, so a small target can still grow.
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    pick = min if rules.select_policy is SelectPolicy.MIN else max
    return max(pick(proposals), current)


def scale_down_limit(current: int, rules: ScalingRules, history: ScalerHistory, now: float) -> int:
    """The fewest replicas scale-down policies allow now (never above `current`)."""
    if rules.select_policy is SelectPolicy.DISABLED or not rules.policies:
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(current, history, policy.period_s, now)
        if policy.type is RatePolicyType.PODS:
            proposals.append(start - policy.value)
        else:
            # Truncated, as HPA does: never remove more than the percentage.
            proposals.append(math.floor(start * (1 - policy.value / 100)))
    # Max (the default) picks the biggest change, i.e. the lowest floor.
    pick = max if rules.select_policy is SelectPolicy.MIN else min
    return max(min(pick(proposals), current), 0)


def limit(
    desired: int, current: int, behavior: Behavior, history: ScalerHistory, now: float
) -> int:
    """`desired` clipped to what the scale-up or scale-down policies allow from `current`."""
    if desired > current:
        return min(desired, scale_up_limit(current, behavior.scale_up, history, now))
    if desired < current:
        return max(desired, scale_down_limit(current, behavior.scale_down, history, now))
    return desired


def next_history(
    history: ScalerHistory,
    current: int,
    desired: int,
    now: float,
    *,
    failures: int,
    last_active_at: float | None = None,
    recommendations: tuple[Recommendation, ...] | None = None,
) -> ScalerHistory:
    """The history after this decision: one constructor call (decide runs at high rates).

    A change from `current` to `desired` is recorded as a scale event; None keeps a field.
    """
    ups, downs, last_scale = (
        history.scale_up_events,
        history.scale_down_events,
        history.last_scale_at,
    )
    if desired > current:
        ups, last_scale = (*ups, ScaleEvent(at=now, change=desired - current)), now
    elif desired < current:
        downs, last_scale = (*downs, ScaleEvent(at=now, change=current - desired)), now
    return ScalerHistory(
        recommendations=history.recommendations if recommendations is None else recommendations,
        scale_up_events=ups,
        scale_down_events=downs,
        consecutive_failures=failures,
        last_active_at=history.last_active_at if last_active_at is None else last_active_at,
        last_scale_at=last_scale,
    )
