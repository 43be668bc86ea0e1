"""decide(): the one function that turns a reading into the replicas to run now.

Called by the operator's reconcile loop on every tick and LISTEN wake-up, and by
the simulator in virtual time. Order of the rules (docs/decisions/0005, 0006):
paused -> bounds correction -> failed reading (hold / fallback) -> demand ->
leave or reach zero (activation, idle cooldown) -> tolerance -> min/max ->
stabilization -> Pods/Percent limits. Cost is O(entries in the windows).
"""

from __future__ import annotations

import math

from backlog_operator.policy import behavior, demand
from backlog_operator.policy.types import (
    Decision,
    FallbackBehavior,
    Reason,
    Recommendation,
    ScalerConfig,
    ScalerHistory,
    Signals,
)

_EPSILON = 1e-9  # float fuzz: 0.1 * 3 / 0.1 must round up to 3, not 4


def _ceil(value: float) -> int:
    return max(math.ceil(value - _EPSILON), 0)


def _describe(signals: Signals, d: demand.Demand) -> str:
    service = "?" if d.service_time_s is None else f"{d.service_time_s:.2f}s"
    return (
        f"ready={signals.ready} inFlight={signals.in_flight} "
        f"arrival={d.arrival_rate_per_s:.2f}/s serviceTime={service}"
    )


def decide(
    config: ScalerConfig,
    signals: Signals,
    current_replicas: int,
    history: ScalerHistory,
    now: float,
) -> Decision:
    """The replicas to run now, why, and the history to pass to the next call.

    `now` is seconds on any monotonic scale (virtual time in the simulator).
    Callers store `Decision.history` and pass it back unchanged next time.
    """
    current = max(current_replicas, 0)
    history = behavior.prune(history, config.behavior, now)
    failures = 0 if signals.ok else history.consecutive_failures + 1
    fallback_active = not signals.ok and failures >= config.fallback.failure_threshold

    if config.paused:
        return Decision(
            desired_replicas=current,
            current_replicas=current,
            reason=Reason.PAUSED,
            message=f"paused: keeping {current} replicas",
            active=current > 0,
            fallback_active=fallback_active,
            raw_recommendation=current,
            demand=float(current),
            history=behavior.next_history(history, current, current, now, failures=failures),
        )

    low, high = config.min_replicas, config.max_replicas
    if current > high or current < low:
        # As HPA does: out-of-range replicas are corrected at once, reading or not.
        target = min(max(current, low), high)
        reason = Reason.ABOVE_MAX_REPLICAS if current > high else Reason.BELOW_MIN_REPLICAS
        return Decision(
            desired_replicas=target,
            current_replicas=current,
            reason=reason,
            message=f"{current} replicas outside [{low}, {high}] -> {target}",
            active=target > 0,
            fallback_active=fallback_active,
            raw_recommendation=target,
            demand=float(target),
            history=behavior.next_history(history, current, target, now, failures=failures),
        )

    if not signals.ok:
        return _on_failure(config, current, history, failures, fallback_active, now)
    return _evaluate(config, signals, current, history, now)


def _on_failure(
    config: ScalerConfig,
    current: int,
    history: ScalerHistory,
    failures: int,
    fallback_active: bool,
    now: float,
) -> Decision:
    """A failed reading: hold below the threshold; then Hold or Static. Never to zero."""
    threshold = config.fallback.failure_threshold
    target = current
    if not fallback_active:
        reason = Reason.SOURCE_ERROR
        message = f"reading failed ({failures}/{threshold}): holding {current} replicas"
    elif config.fallback.behavior is FallbackBehavior.STATIC:
        # Clamped into the bounds, and to at least one: an outage must not stop work.
        low = max(config.min_replicas, 1)
        target = min(max(config.fallback.replicas, low), config.max_replicas)
        reason = Reason.FALLBACK
        message = f"{failures} failed readings: fallback Static -> {target} replicas"
    else:
        reason = Reason.FALLBACK
        message = f"{failures} failed readings: fallback Hold at {current} replicas"
    return Decision(
        desired_replicas=target,
        current_replicas=current,
        reason=reason,
        message=message,
        active=current > 0,
        fallback_active=fallback_active,
        raw_recommendation=target,
        demand=float(target),
        history=behavior.next_history(history, current, target, now, failures=failures),
    )


def _evaluate(
    config: ScalerConfig, signals: Signals, current: int, history: ScalerHistory, now: float
) -> Decision:
    """A good reading: demand, zero rules, tolerance, bounds, stabilization, limits."""
    policy, rules = config.policy, config.behavior
    low, high = config.min_replicas, config.max_replicas
    need = demand.compute(policy, signals)
    raw = _ceil(need.replicas)
    work = max(signals.ready, 0) + max(signals.in_flight, 0)
    # Arrivals count as activity too: a fast stage can show an empty queue between
    # jobs, and dropping it to zero would only make the next job wait for a cold start.
    busy = work > 0 or need.arrival_rate_per_s > 0
    first_reading = history.last_active_at is None
    last_active = now if busy or history.last_active_at is None else history.last_active_at
    recs = history.recommendations
    if first_reading and rules.scale_down.stabilization_window_s > 0:
        # HPA seeds the window with the current size, so a restart never scales in at once.
        recs = (*recs, Recommendation(at=now, replicas=current))

    within_tolerance = False
    stabilized = None
    if current == 0:
        if work <= policy.activation_backlog:
            rec = final = 0
            reason, note = (
                Reason.IDLE,
                f"; at or below activationBacklog={policy.activation_backlog}",
            )
        else:
            # Leaving zero is activation, not HPA scaling: always at least one replica.
            rec = min(max(raw, 1), high)
            stabilized = max(behavior.stabilize(rec, current, recs, rules, now), 1)
            up_limit = behavior.scale_up_limit(current, rules.scale_up, history, now)
            final = max(min(stabilized, up_limit), 1)
            reason, note = Reason.ACTIVATE, ""
    elif low == 0 and not busy and now - last_active >= policy.idle_cooldown_s:
        # The idle cooldown is this transition's own window: no stabilization on top,
        # but the scale-down policies (and Disabled) still apply.
        rec = 0
        final = behavior.limit(0, current, rules, history, now)
        reason = Reason.IDLE_COOLDOWN if final == 0 else Reason.LIMITED_BY_BEHAVIOR
        note = f"; idle for {policy.idle_cooldown_s:g}s"
    else:
        # Running, or not yet idle long enough: never below one replica.
        floor = max(low, 1)
        within_tolerance = abs(need.replicas / current - 1) <= config.tolerance
        rec = min(max(current if within_tolerance else raw, floor), high)
        stabilized = behavior.stabilize(rec, current, recs, rules, now)
        final = behavior.limit(stabilized, current, rules, history, now)
        reason, note = _reason(current, raw, rec, stabilized, final, within_tolerance, high)

    history = behavior.next_history(
        history,
        current,
        final,
        now,
        failures=0,
        last_active_at=last_active,
        recommendations=behavior.record(recs, rec, rules, now),
    )
    return Decision(
        desired_replicas=final,
        current_replicas=current,
        reason=reason,
        message=f"{_describe(signals, need)} -> {final} replicas ({need.basis}){note}",
        active=busy and (current > 0 or work > policy.activation_backlog),
        fallback_active=False,
        raw_recommendation=raw,
        demand=need.replicas,
        history=history,
    )


def _reason(
    current: int,
    raw: int,
    rec: int,
    stabilized: int,
    final: int,
    within_tolerance: bool,
    high: int,
) -> tuple[Reason, str]:
    """The most telling reason for a running target, and a note for the message."""
    capped = f"; capped at maxReplicas={high}" if raw > high else ""
    if final == current:
        if within_tolerance and raw != current:
            return Reason.WITHIN_TOLERANCE, f"; {raw} is within tolerance of {current}"
        if rec == current:
            return (Reason.AT_MAX_REPLICAS, capped) if raw > high else (Reason.HOLD, "")
        if stabilized == current:
            return Reason.STABILIZED, f"; {rec} held back by the stabilization window"
        return Reason.LIMITED_BY_BEHAVIOR, f"; {stabilized} not allowed by the behavior policies"
    if final != stabilized:
        return Reason.LIMITED_BY_BEHAVIOR, f"; {stabilized} limited by the behavior policies"
    if stabilized != rec:
        return Reason.STABILIZED, f"; {rec} stabilized to {stabilized}"
    return (Reason.SCALE_UP if final > current else Reason.SCALE_DOWN), capped
