"""decide(): the one function that turns a reading into the replicas to run now.

Called by the operator's reconcile loop on every tick and LISTEN wake-up, and by
the simulator in virtual time. Order of the rules (docs/decisions/0005, 0006):
paused -> bounds correction -> failed reading (hold / fallback) -> demand ->
leave or reach zero (activation, idle cooldown) -> tolerance -> min/max ->
stabilization -> Pods/Percent limits. Cost is O(entries in the windows).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from backlog_operator.policy import behavior, demand
from backlog_operator.policy.types import (
    Decision,
    FallbackBehavior,
    PolicySpec,
    Reason,
    Recommendation,
    ScalerConfig,
    ScalerHistory,
    Signals,
)

_EPSILON = 1e-9  # float fuzz: 0.1 * 3 / 0.1 must round up to 3, not 4


def _ceil(value: float) -> int:
    rounded = math.ceil(value - _EPSILON)
    return rounded if rounded > 0 else 0


def _text(text: str) -> Callable[[], str]:
    """An `explain` for a message already formatted (the rare paths)."""
    return lambda: text


def _describe(signals: Signals, d: demand.Demand) -> str:
    service = "?" if d.service_time_s is None else f"{d.service_time_s:.2f}s"
    return (
        f"ready={signals.ready} inFlight={signals.in_flight} "
        f"arrival={d.arrival_rate_per_s:.2f}/s serviceTime={service}"
    )


def _message(
    signals: Signals,
    found: demand.Terms,
    final: int,
    note: str,
    raw: int,
    rec: int,
    current: int,
    stabilized: int,
    high: int,
    policy: PolicySpec,
) -> str:
    """The message of a good reading (Decision.explain): the reading, the result, why."""
    need = demand.Demand(*found)
    numbers = note.format(
        raw=raw,
        rec=rec,
        current=current,
        stabilized=stabilized,
        high=high,
        activation=policy.activation_backlog,
        cooldown=policy.idle_cooldown_s,
    )
    return f"{_describe(signals, need)} -> {final} replicas ({need.basis}){numbers}"


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
    current = current_replicas if current_replicas > 0 else 0
    history = behavior.prune(history, config.behavior, now)
    ok = signals.ok
    failures = 0 if ok else history.consecutive_failures + 1
    fallback_active = not ok and failures >= config.fallback.failure_threshold

    if config.paused:
        return Decision(
            desired_replicas=current,
            current_replicas=current,
            reason=Reason.PAUSED,
            active=current > 0,
            fallback_active=fallback_active,
            raw_recommendation=current,
            demand=float(current),
            history=behavior.next_history(history, current, current, now, failures=failures),
            explain=_text(f"paused: keeping {current} replicas"),
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
            active=target > 0,
            fallback_active=fallback_active,
            raw_recommendation=target,
            demand=float(target),
            history=behavior.next_history(history, current, target, now, failures=failures),
            explain=_text(f"{current} replicas outside [{low}, {high}] -> {target}"),
        )

    if not ok:
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
        active=current > 0,
        fallback_active=fallback_active,
        raw_recommendation=target,
        demand=float(target),
        history=behavior.next_history(history, current, target, now, failures=failures),
        explain=_text(message),
    )


def _evaluate(
    config: ScalerConfig, signals: Signals, current: int, history: ScalerHistory, now: float
) -> Decision:
    """A good reading: demand, zero rules, tolerance, bounds, stabilization, limits."""
    policy, rules = config.policy, config.behavior
    low, high = config.min_replicas, config.max_replicas
    found = demand.terms(policy, signals)
    replicas, rate = found[0], found[1]
    raw = _ceil(replicas)
    work = (signals.ready if signals.ready > 0 else 0) + (
        signals.in_flight if signals.in_flight > 0 else 0
    )
    # Arrivals count as activity too: a fast stage can show an empty queue between jobs,
    # and dropping it to zero would only make the next job wait for a cold start.
    busy = work > 0 or rate > 0
    first_reading = history.last_active_at is None
    last_active = now if busy or history.last_active_at is None else history.last_active_at
    recs = history.recommendations
    if first_reading and rules.scale_down.stabilization_window_s > 0:
        # HPA seeds the window with the current size, so a restart never scales in at once.
        recs = (*recs, Recommendation(at=now, replicas=current))

    within_tolerance = False
    stabilized = rec = final = 0
    # The note is a str.format template over the numbers below, formatted only when the
    # message is read (decide runs many times a second; see Decision.explain).
    note = ""
    if current == 0:
        if work <= policy.activation_backlog:
            reason, note = Reason.IDLE, "; at or below activationBacklog={activation}"
        else:
            # Leaving zero is activation, not HPA scaling: always at least one replica.
            rec = min(max(raw, 1), high)
            stabilized = max(behavior.stabilize(rec, current, recs, rules, now), 1)
            up_limit = behavior.scale_up_limit(current, rules.scale_up, history, now)
            final = max(min(stabilized, up_limit), 1)
            reason = Reason.ACTIVATE
    elif low == 0 and not busy and now - last_active >= policy.idle_cooldown_s:
        # The idle cooldown is this transition's own window: no stabilization on top,
        # but the scale-down policies (and Disabled) still apply.
        final = behavior.limit(0, current, rules, history, now)
        reason = Reason.IDLE_COOLDOWN if final == 0 else Reason.LIMITED_BY_BEHAVIOR
        note = "; idle for {cooldown:g}s"
    else:
        # Running, or not yet idle long enough: never below one replica.
        floor = low if low > 1 else 1
        within_tolerance = abs(replicas / current - 1) <= config.tolerance
        rec = current if within_tolerance else raw
        rec = floor if rec < floor else high if rec > high else rec
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
        active=busy and (current > 0 or work > policy.activation_backlog),
        fallback_active=False,
        raw_recommendation=raw,
        demand=replicas,
        history=history,
        explain=functools.partial(
            _message, signals, found, final, note, raw, rec, current, stabilized, high, policy
        ),
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
    """The most telling reason for a running target, and a note template for the message."""
    capped = "; capped at maxReplicas={high}" if raw > high else ""
    if final == current:
        if within_tolerance and raw != current:
            return Reason.WITHIN_TOLERANCE, "; {raw} is within tolerance of {current}"
        if rec == current:
            return (Reason.AT_MAX_REPLICAS, capped) if raw > high else (Reason.HOLD, "")
        if stabilized == current:
            return Reason.STABILIZED, "; {rec} held back by the stabilization window"
        return Reason.LIMITED_BY_BEHAVIOR, "; {stabilized} not allowed by the behavior policies"
    if final != stabilized:
        return Reason.LIMITED_BY_BEHAVIOR, "; {stabilized} limited by the behavior policies"
    if stabilized != rec:
        return Reason.STABILIZED, "; {rec} stabilized to {stabilized}"
    return (Reason.SCALE_UP if final > current else Reason.SCALE_DOWN), capped
