"""Example tests for policy.decide: one or more per rule (math, zero, tolerance, limits)."""

from __future__ import annotations

import dataclasses

import pytest

from backlog_operator import policy
from backlog_operator.policy import behavior, demand
from backlog_operator.policy.types import (
    Behavior,
    Fallback,
    FallbackBehavior,
    PolicySpec,
    PolicyType,
    RatePolicy,
    RatePolicyType,
    Reason,
    ScaleEvent,
    ScalerConfig,
    ScalerHistory,
    ScalingRules,
    SelectPolicy,
    Signals,
    hpa_scale_down,
    hpa_scale_up,
)

# No stabilization, no rate limits: isolates the demand and zero rules.
FREE = Behavior(
    scale_up=ScalingRules(0.0, SelectPolicy.MAX, (RatePolicy(RatePolicyType.PERCENT, 10000, 1.0),)),
    scale_down=ScalingRules(0.0, SelectPolicy.MAX, (RatePolicy(RatePolicyType.PERCENT, 100, 1.0),)),
)


def config(**changes: object) -> ScalerConfig:
    base = ScalerConfig(min_replicas=0, max_replicas=50, behavior=FREE)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def qw(**changes: object) -> PolicySpec:
    return dataclasses.replace(PolicySpec(), **changes)  # type: ignore[arg-type]


def run(
    cfg: ScalerConfig,
    signals: Signals,
    current: int,
    history: ScalerHistory | None = None,
    now: float = 1000.0,
) -> policy.Decision:
    return policy.decide(cfg, signals, current, history or ScalerHistory(), now)


# --- demand -----------------------------------------------------------------------------------


def test_backlog_per_replica_counts_in_flight_like_keda_average_value() -> None:
    cfg = config(policy=qw(type=PolicyType.BACKLOG_PER_REPLICA, backlog_per_replica=10))
    assert run(cfg, Signals(ready=25, in_flight=0), 3).desired_replicas == 3
    # Busy workers with an empty queue are not scaled away.
    assert run(cfg, Signals(ready=0, in_flight=12), 2).desired_replicas == 2
    assert run(cfg, Signals(ready=0, in_flight=21), 3).desired_replicas == 3
    assert run(cfg, Signals(ready=20, in_flight=21), 3).desired_replicas == 5


def test_queue_wait_is_littles_law_plus_drain_term() -> None:
    signals = Signals(ready=120, in_flight=4, arrival_rate_per_s=6.0, service_time_s=1.0)
    d = demand.compute(qw(target_queue_wait_s=30, target_utilization=0.8), signals)
    # serve = 6 * 1.0 / 0.8 = 7.5; allowance = 6 * 30 / 2 = 90; drain = (120 - 90) / 30 = 1
    assert d.replicas == pytest.approx(8.5)
    assert d.basis == "QueueWait: serve 7.5 + drain 1.0"
    # Defaults (W 5 s, utilization 1.0): serve 6; drain = (120 - 6 * 5 / 2) * 1.0 / 5 = 21
    assert demand.compute(PolicySpec(), signals).replicas == pytest.approx(27)
    assert run(config(), signals, 10).desired_replicas == 27


def test_queue_within_the_wait_allowance_is_not_drained() -> None:
    # rate 10/s, W 5 s: a queue of 10 * 5 / 2 = 25 jobs means a mean wait of W/2.
    def replicas(ready: int) -> float:
        signals = Signals(ready=ready, arrival_rate_per_s=10.0, service_time_s=1.0)
        return demand.compute(PolicySpec(), signals).replicas

    assert replicas(0) == replicas(25) == pytest.approx(10)
    assert replicas(35) == pytest.approx(10 + (35 - 25) / 5)
    # No arrivals, no allowance: one ready job is drained (the floor of one replica).
    assert demand.compute(PolicySpec(), Signals(ready=1, service_time_s=1.0)).replicas > 0


def test_design_example_worked_in_decision_0005() -> None:
    # DESIGN.md's spec sets targetQueueWaitSeconds 30 and targetUtilization 0.8.
    example = qw(target_queue_wait_s=30, target_utilization=0.8)
    signals = Signals(ready=120, in_flight=8, arrival_rate_per_s=6.1, service_time_s=0.9)
    # serve = 6.1 * 0.9 / 0.8 = 6.8625 (in-flight floor 8 * 0.9 / 30 = 0.24 does not bind);
    # drain = (120 - 6.1 * 30 / 2) * 0.9 / 30 = 0.855
    assert demand.compute(example, signals).replicas == pytest.approx(6.8625 + 0.855)
    assert run(config(policy=example), signals, 4).desired_replicas == 8
    # The same reading under the defaults (W 5 s, utilization 1.0):
    # 5.49 + (120 - 15.25) * 0.9 / 5 = 24.345
    assert demand.compute(PolicySpec(), signals).replicas == pytest.approx(24.345)


def test_in_flight_floor_holds_long_jobs_only() -> None:
    # Jobs as long as W (5 s) or longer: every busy replica is kept, even with no arrivals
    # (a stale rate must not release long jobs for a rerun).
    long_jobs = Signals(ready=0, in_flight=9, arrival_rate_per_s=0.1, service_time_s=10.0)
    assert run(config(), long_jobs, 9).desired_replicas == 9
    # Short jobs count for S/W of a replica each: 9 * 1/5 = 1.8; the busy pods being
    # scaled in finish their one-second jobs while they drain.
    short_jobs = dataclasses.replace(long_jobs, service_time_s=1.0)
    assert demand.compute(PolicySpec(), short_jobs).replicas == pytest.approx(1.8)
    assert run(config(), short_jobs, 9).desired_replicas == 2


def test_unknown_service_time_falls_back_to_backlog_per_replica_and_says_so() -> None:
    signals = Signals(ready=35, in_flight=0, arrival_rate_per_s=5.0)
    decision = run(config(policy=qw(backlog_per_replica=10)), signals, 1)
    assert decision.desired_replicas == 4
    assert "service time unknown" in decision.message


def test_service_time_is_the_measured_figure_or_unknown() -> None:
    assert demand.estimate_service_time(Signals(service_time_s=2.0)) == pytest.approx(2.0)
    assert demand.estimate_service_time(Signals(service_time_s=float("nan"))) is None
    # No guess from in_flight / completion rate: one job in flight would swing it.
    signals = Signals(ready=0, in_flight=4, completion_rate_per_s=2.0)
    assert demand.estimate_service_time(signals) is None


def test_more_in_flight_never_lowers_the_count_without_measured_service_time() -> None:
    # The case that broke monotonicity while in_flight / completion was an estimate.
    cfg = config(policy=qw(backlog_per_replica=10), max_replicas=100)
    idle = Signals(ready=400, in_flight=0, completion_rate_per_s=200.0)
    busy = Signals(ready=400, in_flight=1, completion_rate_per_s=200.0)
    assert run(cfg, idle, 5).desired_replicas <= run(cfg, busy, 5).desired_replicas


def test_upstream_flow_counts_as_arrivals_only_when_configured() -> None:
    signals = Signals(
        ready=0,
        in_flight=1,
        arrival_rate_per_s=1.0,
        service_time_s=1.0,
        upstream_arrival_rate_per_s=8.0,
    )
    without = run(config(), signals, 2)
    with_upstream = run(config(policy=qw(upstream_stages=("chunking",))), signals, 2)
    assert without.desired_replicas == 1  # 1 * 1 / 1.0
    assert with_upstream.desired_replicas == 8  # 8 * 1 / 1.0
    # max, not sum: the same jobs are counted once.
    assert demand.arrival_rate(qw(upstream_stages=("x",)), signals) == 8.0


# --- zero: activation and idle cooldown -------------------------------------------------------


def test_activation_from_zero_only_above_activation_backlog() -> None:
    cfg = config(policy=qw(activation_backlog=5))
    idle = run(cfg, Signals(ready=5, in_flight=0), 0)
    assert (idle.desired_replicas, idle.reason, idle.active) == (0, Reason.IDLE, False)
    assert idle.message.endswith("; at or below activationBacklog=5")
    active = run(cfg, Signals(ready=6, in_flight=0), 0)
    assert active.desired_replicas >= 1
    assert active.reason is Reason.ACTIVATE and active.active


def test_activation_reaches_one_even_when_policies_only_allow_percent() -> None:
    percent_only = Behavior(
        scale_up=ScalingRules(0.0, SelectPolicy.MAX, (RatePolicy(RatePolicyType.PERCENT, 100, 15),))
    )
    decision = run(config(behavior=percent_only), Signals(ready=500), 0)
    assert decision.desired_replicas == 1


@pytest.mark.parametrize(
    ("behavior_rules", "after_one_period"),
    [
        (Behavior(), 20),  # ours: max(400 % of 4, 4 pods) = 4 + 16
        (Behavior(hpa_scale_up(), hpa_scale_down()), 8),  # HPA's: max(100 % of 4, 4 pods)
    ],
)
def test_default_behavior_activates_to_four_pods_then_grows_per_period(
    behavior_rules: Behavior, after_one_period: int
) -> None:
    cfg = ScalerConfig(min_replicas=0, max_replicas=100, behavior=behavior_rules)
    big = Signals(ready=10_000, in_flight=0, arrival_rate_per_s=50, service_time_s=1.0)
    first = policy.decide(cfg, big, 0, ScalerHistory(), 0.0)
    assert first.desired_replicas == 4
    within_period = policy.decide(cfg, big, 4, first.history, 10.0)
    assert within_period.desired_replicas == 4
    assert within_period.reason is Reason.LIMITED_BY_BEHAVIOR
    next_period = policy.decide(cfg, big, 4, within_period.history, 15.5)
    assert next_period.desired_replicas == after_one_period


def test_idle_cooldown_before_zero() -> None:
    cfg = config(policy=qw(idle_cooldown_s=120))
    busy = run(cfg, Signals(ready=0, in_flight=1, service_time_s=1.0), 1, now=0.0)
    empty = Signals(ready=0, in_flight=0, arrival_rate_per_s=0.0, service_time_s=1.0)
    waiting = policy.decide(cfg, empty, 1, busy.history, 119.0)
    assert waiting.desired_replicas == 1
    gone = policy.decide(cfg, empty, 1, waiting.history, 120.0)
    assert (gone.desired_replicas, gone.reason) == (0, Reason.IDLE_COOLDOWN)


def test_idle_cooldown_restarts_on_arrivals() -> None:
    cfg = config(policy=qw(idle_cooldown_s=60))
    first = run(cfg, Signals(), 1, now=0.0)
    trickle = policy.decide(
        cfg, Signals(arrival_rate_per_s=0.2, service_time_s=0.1), 1, first.history, 50.0
    )
    after = policy.decide(cfg, Signals(), 1, trickle.history, 100.0)
    assert after.desired_replicas == 1
    assert policy.decide(cfg, Signals(), 1, after.history, 110.0).desired_replicas == 0


def test_no_zero_when_min_replicas_positive() -> None:
    cfg = config(min_replicas=2, policy=qw(idle_cooldown_s=0))
    assert run(cfg, Signals(), 5).desired_replicas == 2


# --- tolerance and bounds ---------------------------------------------------------------------


def test_tolerance_keeps_current_for_small_changes() -> None:
    cfg = config(policy=qw(type=PolicyType.BACKLOG_PER_REPLICA, backlog_per_replica=10))
    within = run(cfg, Signals(ready=105), 10)  # 10.5 vs 10
    assert (within.desired_replicas, within.reason) == (10, Reason.WITHIN_TOLERANCE)
    assert within.message.endswith("(BacklogPerReplica: (105+0)/10); 11 is within tolerance of 10")
    outside = run(cfg, Signals(ready=115), 10)  # 11.5 vs 10
    assert outside.desired_replicas == 12
    strict = run(dataclasses.replace(cfg, tolerance=0.0), Signals(ready=105), 10)
    assert strict.desired_replicas == 11


def test_bounds_clamp_and_correct_out_of_range_current() -> None:
    cfg = config(
        min_replicas=2,
        max_replicas=5,
        policy=qw(type=PolicyType.BACKLOG_PER_REPLICA, backlog_per_replica=1),
    )
    capped = run(cfg, Signals(ready=100), 5)
    assert (capped.desired_replicas, capped.reason) == (5, Reason.AT_MAX_REPLICAS)
    assert run(cfg, Signals(ready=100), 9).reason is Reason.ABOVE_MAX_REPLICAS
    below = run(cfg, Signals.failed(), 0)
    assert (below.desired_replicas, below.reason) == (2, Reason.BELOW_MIN_REPLICAS)


# --- behavior ---------------------------------------------------------------------------------


def test_scale_down_uses_highest_recommendation_in_window() -> None:
    cfg = config(
        behavior=dataclasses.replace(
            FREE, scale_down=dataclasses.replace(FREE.scale_down, stabilization_window_s=60.0)
        ),
        policy=qw(type=PolicyType.BACKLOG_PER_REPLICA, backlog_per_replica=1),
    )
    first = run(cfg, Signals(ready=8), 8, now=0.0)
    dip = policy.decide(cfg, Signals(ready=3), 8, first.history, 30.0)
    assert (dip.desired_replicas, dip.reason) == (8, Reason.STABILIZED)
    partial = policy.decide(cfg, Signals(ready=2), 8, dip.history, 61.0)
    assert partial.desired_replicas == 3  # the 8 left the window; 3 (at 30 s) is the highest
    assert policy.decide(cfg, Signals(ready=2), 3, partial.history, 95.0).desired_replicas == 2


def test_scale_up_uses_lowest_recommendation_in_window() -> None:
    cfg = config(
        behavior=dataclasses.replace(
            FREE, scale_up=dataclasses.replace(FREE.scale_up, stabilization_window_s=30.0)
        ),
        policy=qw(type=PolicyType.BACKLOG_PER_REPLICA, backlog_per_replica=1),
    )
    calm = run(cfg, Signals(ready=2), 2, now=0.0)
    burst = policy.decide(cfg, Signals(ready=9), 2, calm.history, 10.0)
    assert (burst.desired_replicas, burst.reason) == (2, Reason.STABILIZED)
    later = policy.decide(cfg, Signals(ready=9), 2, burst.history, 31.0)
    assert later.desired_replicas == 9


def test_first_decision_seeds_scale_down_window_with_current() -> None:
    cfg = ScalerConfig(min_replicas=1, max_replicas=10)  # default 60 s scale-down window
    reading = Signals(ready=0, in_flight=1, service_time_s=1)
    restart = policy.decide(cfg, reading, 8, ScalerHistory(), 0.0)
    assert restart.desired_replicas == 8
    held = policy.decide(cfg, reading, 8, restart.history, 59.0)
    assert (held.desired_replicas, held.reason) == (8, Reason.STABILIZED)
    settled = policy.decide(cfg, reading, 8, held.history, 61.0)
    assert settled.desired_replicas == 1


def test_pods_policy_counts_changes_within_period() -> None:
    rules = ScalingRules(0.0, SelectPolicy.MAX, (RatePolicy(RatePolicyType.PODS, 2, 60.0),))
    history = ScalerHistory(scale_up_events=(ScaleEvent(at=10.0, change=1),))
    assert behavior.scale_up_limit(5, rules, history, 30.0) == 6  # started at 4, +2
    assert behavior.scale_up_limit(5, rules, history, 71.0) == 7  # event left the period


def test_percent_policies_round_like_hpa() -> None:
    up = ScalingRules(0.0, SelectPolicy.MAX, (RatePolicy(RatePolicyType.PERCENT, 50, 15.0),))
    down = ScalingRules(0.0, SelectPolicy.MAX, (RatePolicy(RatePolicyType.PERCENT, 50, 15.0),))
    assert behavior.scale_up_limit(3, up, ScalerHistory(), 0.0) == 5  # ceil(4.5)
    assert behavior.scale_down_limit(3, down, ScalerHistory(), 0.0) == 1  # floor(1.5)


def test_select_policy_min_and_disabled() -> None:
    two = (RatePolicy(RatePolicyType.PODS, 1, 15.0), RatePolicy(RatePolicyType.PERCENT, 100, 15.0))
    h = ScalerHistory()
    assert behavior.scale_up_limit(4, ScalingRules(0.0, SelectPolicy.MAX, two), h, 0.0) == 8
    assert behavior.scale_up_limit(4, ScalingRules(0.0, SelectPolicy.MIN, two), h, 0.0) == 5
    assert behavior.scale_down_limit(4, ScalingRules(0.0, SelectPolicy.MIN, two), h, 0.0) == 3
    assert behavior.scale_up_limit(4, ScalingRules(0.0, SelectPolicy.DISABLED, two), h, 0.0) == 4
    cfg = config(
        behavior=dataclasses.replace(FREE, scale_down=ScalingRules(0.0, SelectPolicy.DISABLED, two))
    )
    assert run(cfg, Signals(), 6, now=0.0).desired_replicas == 6


def test_history_stays_bounded() -> None:
    cfg = ScalerConfig(min_replicas=0, max_replicas=50)
    history = ScalerHistory()
    current = 0
    for second in range(3000):
        ready = (second * 7919) % 400  # noisy
        d = policy.decide(cfg, Signals(ready=ready, service_time_s=1.0), current, history, second)
        current, history = d.desired_replicas, d.history
    assert len(history.recommendations) <= 61  # one a second within the 60 s window, at most
    assert len(history.scale_up_events) + len(history.scale_down_events) <= 32


# --- errors and pause -------------------------------------------------------------------------


def test_failed_reading_holds_then_fallback_hold() -> None:
    cfg = config(fallback=Fallback(failure_threshold=3, behavior=FallbackBehavior.HOLD))
    history = ScalerHistory()
    reasons = []
    for second in range(4):
        d = policy.decide(cfg, Signals.failed(), 3, history, float(second))
        assert d.desired_replicas == 3
        reasons.append((d.reason, d.fallback_active))
        history = d.history
    assert reasons == [
        (Reason.SOURCE_ERROR, False),
        (Reason.SOURCE_ERROR, False),
        (Reason.FALLBACK, True),
        (Reason.FALLBACK, True),
    ]
    recovered = policy.decide(cfg, Signals(ready=3, service_time_s=1.0), 3, history, 5.0)
    assert recovered.history.consecutive_failures == 0 and not recovered.fallback_active


def test_fallback_static_sets_replicas_within_bounds_and_never_zero() -> None:
    cfg = config(
        max_replicas=4,
        fallback=Fallback(failure_threshold=1, behavior=FallbackBehavior.STATIC, replicas=3),
    )
    assert run(cfg, Signals.failed(), 0).desired_replicas == 3
    assert run(cfg, Signals.failed(), 1).reason is Reason.FALLBACK
    capped = dataclasses.replace(cfg, max_replicas=2)
    assert run(capped, Signals.failed(), 1).desired_replicas == 2


def test_failed_reading_never_scales_to_zero_even_after_cooldown() -> None:
    cfg = config(policy=qw(idle_cooldown_s=0))
    d = run(cfg, Signals.failed(), 2, ScalerHistory(last_active_at=0.0), now=10_000.0)
    assert d.desired_replicas == 2


def test_paused_keeps_current() -> None:
    d = run(config(paused=True), Signals(ready=1000), 3)
    assert (d.desired_replicas, d.reason, d.changed) == (3, Reason.PAUSED, False)


def test_message_explains_the_decision() -> None:
    d = run(
        config(), Signals(ready=120, in_flight=8, arrival_rate_per_s=6.1, service_time_s=0.9), 4
    )
    assert d.message.startswith("ready=120 inFlight=8 arrival=6.10/s serviceTime=0.90s -> ")
    assert "QueueWait" in d.message


def test_idle_cooldown_still_obeys_scale_down_policies() -> None:
    one_pod = Behavior(
        scale_down=ScalingRules(0.0, SelectPolicy.MAX, (RatePolicy(RatePolicyType.PODS, 1, 60.0),))
    )
    cfg = config(behavior=one_pod, policy=qw(idle_cooldown_s=0))
    d = run(cfg, Signals(), 3, ScalerHistory(last_active_at=0.0))
    assert (d.desired_replicas, d.reason) == (2, Reason.LIMITED_BY_BEHAVIOR)


def test_active_means_work_above_activation() -> None:
    cfg = config(policy=qw(activation_backlog=3))
    assert run(cfg, Signals(ready=2), 1).active  # running with work
    assert not run(cfg, Signals(ready=2), 0).active  # at zero, below activation
    assert not run(cfg, Signals(), 2).active  # running, idle (cooling down)
    assert run(cfg, Signals.failed(), 2).active  # unknown: the target runs
