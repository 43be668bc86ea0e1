"""Property tests for policy.decide: bounds, behavior limits, monotonicity, never zero with work.

Sequences of readings are replayed through decide the way the operator and the
simulator do (desired becomes current, history is fed back), in virtual time.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from backlog_operator import policy
from backlog_operator.policy import behavior
from backlog_operator.policy.types import (
    Behavior,
    Fallback,
    FallbackBehavior,
    PolicySpec,
    PolicyType,
    RatePolicy,
    RatePolicyType,
    Reason,
    Recommendation,
    ScalerConfig,
    ScalerHistory,
    ScalingRules,
    SelectPolicy,
    Signals,
)

SETTINGS = settings(max_examples=60, deadline=None)

rates = st.one_of(st.none(), st.floats(0, 200, allow_nan=False))
service_times = st.one_of(st.none(), st.floats(0.001, 30, allow_nan=False))


@st.composite
def signals(draw: st.DrawFn, ok: bool | None = None) -> Signals:
    good = draw(st.booleans()) if ok is None else ok
    if not good:
        return Signals.failed()
    return Signals(
        ready=draw(st.integers(0, 5000)),
        in_flight=draw(st.integers(0, 100)),
        arrival_rate_per_s=draw(rates),
        completion_rate_per_s=draw(rates),
        service_time_s=draw(service_times),
        upstream_arrival_rate_per_s=draw(rates),
    )


rate_policies = st.builds(
    RatePolicy,
    type=st.sampled_from(RatePolicyType),
    value=st.one_of(st.integers(1, 4), st.integers(5, 300)),  # mostly binding
    period_s=st.sampled_from([1.0, 5.0, 15.0, 60.0]),
)
rules = st.builds(
    ScalingRules,
    stabilization_window_s=st.sampled_from([0.0, 10.0, 60.0, 300.0]),
    select_policy=st.sampled_from(SelectPolicy),
    policies=st.lists(rate_policies, min_size=1, max_size=2).map(tuple),
)


@st.composite
def configs(draw: st.DrawFn, fallback: FallbackBehavior | None = None) -> ScalerConfig:
    low = draw(st.one_of(st.just(0), st.integers(0, 5)))  # scale-to-zero is the common case
    high = draw(st.integers(max(low, 1), 40))
    return ScalerConfig(
        min_replicas=low,
        max_replicas=high,
        policy=PolicySpec(
            type=draw(st.sampled_from(PolicyType)),
            target_queue_wait_s=draw(st.sampled_from([1.0, 30.0, 300.0])),
            target_utilization=draw(st.sampled_from([0.5, 0.8, 1.0])),
            backlog_per_replica=draw(st.sampled_from([1.0, 10.0, 100.0])),
            activation_backlog=draw(st.integers(0, 20)),
            idle_cooldown_s=draw(st.sampled_from([0.0, 30.0, 120.0])),
            upstream_stages=draw(st.sampled_from([(), ("chunking",)])),
        ),
        behavior=Behavior(scale_up=draw(rules), scale_down=draw(rules)),
        fallback=Fallback(
            failure_threshold=draw(st.integers(1, 4)),
            behavior=fallback or draw(st.sampled_from(FallbackBehavior)),
            replicas=draw(st.integers(1, high)),
        ),
        tolerance=draw(st.sampled_from([0.0, 0.1, 0.3])),
    )


starts = st.one_of(st.just(0), st.integers(0, 40))  # zero is where the special rules live
steps = st.lists(st.tuples(st.sampled_from([0.5, 1.0, 5.0, 15.0, 40.0]), signals()), max_size=15)


def replay(
    cfg: ScalerConfig, start: int, seq: list[tuple[float, Signals]]
) -> list[tuple[float, policy.Decision]]:
    """Feed each decision back as the next call's current replicas and history."""
    now, current, history, out = 0.0, start, ScalerHistory(), []
    for dt, reading in seq:
        now += dt
        d = policy.decide(cfg, reading, current, history, now)
        out.append((now, d))
        current, history = d.desired_replicas, d.history
    return out


@SETTINGS
@given(cfg=configs(), start=starts, seq=steps)
def test_always_within_bounds(
    cfg: ScalerConfig, start: int, seq: list[tuple[float, Signals]]
) -> None:
    for _, d in replay(cfg, start, seq):
        assert cfg.min_replicas <= d.desired_replicas <= cfg.max_replicas, d


def _allowed(rules: ScalingRules, start: int, up: bool) -> int:
    """Independent restatement of HPA's limit for one period start (single-period configs)."""
    proposals = []
    for p in rules.policies:
        if p.type is RatePolicyType.PODS:
            proposals.append(start + p.value if up else start - p.value)
        elif up:
            proposals.append(math.ceil(start * (1 + p.value / 100)))
        else:
            proposals.append(math.floor(start * (1 - p.value / 100)))
    most_change = max if up else min
    least_change = min if up else max
    return (least_change if rules.select_policy is SelectPolicy.MIN else most_change)(proposals)


@SETTINGS
@given(
    cfg=configs(fallback=FallbackBehavior.HOLD),
    start=starts,
    seq=steps,
    period=st.sampled_from([5.0, 15.0, 60.0]),
)
def test_never_exceeds_behavior_limits_per_period(
    cfg: ScalerConfig, start: int, seq: list[tuple[float, Signals]], period: float
) -> None:
    # One period for every policy, so the period start is one number we can track here.
    def same_period(r: ScalingRules) -> ScalingRules:
        return dataclasses.replace(
            r, policies=tuple(dataclasses.replace(p, period_s=period) for p in r.policies)
        )

    cfg = dataclasses.replace(
        cfg,
        min_replicas=0,
        behavior=Behavior(same_period(cfg.behavior.scale_up), same_period(cfg.behavior.scale_down)),
    )
    start = min(start, cfg.max_replicas)
    changes: list[tuple[float, int]] = []  # (time, signed change)
    current = start
    for now, d in replay(cfg, start, seq):
        period_start = current - sum(c for t, c in changes if t > now - period)
        target = d.desired_replicas
        if target > current:
            if cfg.behavior.scale_up.select_policy is SelectPolicy.DISABLED:
                assert current == 0, d  # only activation may leave zero with scale-up disabled
            # Activation may always reach one replica (documented exception).
            limit = max(_allowed(cfg.behavior.scale_up, period_start, up=True), current)
            assert target <= max(limit, 1 if current == 0 else 0), (d, period_start)
        elif target < current:
            assert cfg.behavior.scale_down.select_policy is not SelectPolicy.DISABLED, d
            limit = min(_allowed(cfg.behavior.scale_down, period_start, up=False), current)
            assert target >= limit, (d, period_start)
        if target != current:
            changes.append((now, target - current))
        current = target


@SETTINGS
@given(
    cfg=configs(),
    start=starts,
    prefix=steps,
    reading=signals(ok=True),
    extra_ready=st.integers(0, 5000),
    extra_in_flight=st.integers(0, 50),
    dt=st.sampled_from([0.5, 5.0, 60.0]),
)
def test_monotone_in_backlog(
    cfg: ScalerConfig,
    start: int,
    prefix: list[tuple[float, Signals]],
    reading: Signals,
    extra_ready: int,
    extra_in_flight: int,
    dt: float,
) -> None:
    history, current, now = ScalerHistory(), start, 0.0
    if prefix:
        now, last = replay(cfg, start, prefix)[-1]
        history, current = last.history, last.desired_replicas
    more = dataclasses.replace(
        reading,
        ready=reading.ready + extra_ready,
        in_flight=reading.in_flight + extra_in_flight,
    )
    less_d = policy.decide(cfg, reading, current, history, now + dt)
    more_d = policy.decide(cfg, more, current, history, now + dt)
    assert less_d.desired_replicas <= more_d.desired_replicas, (less_d, more_d)


@SETTINGS
@given(cfg=configs(), start=starts, seq=steps)
def test_never_zero_with_work(
    cfg: ScalerConfig, start: int, seq: list[tuple[float, Signals]]
) -> None:
    current = min(max(start, cfg.min_replicas), cfg.max_replicas)
    for (_, reading), (_, d) in zip(seq, replay(cfg, current, seq), strict=True):
        work = reading.ready + reading.in_flight
        if reading.ok and current > 0 and work > 0:
            assert d.desired_replicas >= 1, d
        if reading.ok and current == 0 and work > cfg.policy.activation_backlog:
            assert d.desired_replicas >= 1, d
        current = d.desired_replicas


@SETTINGS
@given(cfg=configs(), start=st.integers(1, 40), seq=steps, failures=st.integers(1, 8))
def test_failed_reading_never_scales_to_zero(
    cfg: ScalerConfig, start: int, seq: list[tuple[float, Signals]], failures: int
) -> None:
    cfg = dataclasses.replace(cfg, max_replicas=max(cfg.max_replicas, start))
    decisions = replay(cfg, start, seq)
    now, current, history = 0.0, start, ScalerHistory()
    if decisions:
        now, last = decisions[-1]
        current, history = last.desired_replicas, last.history
    for i in range(failures):
        d = policy.decide(cfg, Signals.failed(), current, history, now + 1000.0 * (i + 1))
        if current > 0:
            assert d.desired_replicas > 0, d
        else:
            assert d.desired_replicas >= 0
        assert d.reason in {
            Reason.SOURCE_ERROR,
            Reason.FALLBACK,
            Reason.BELOW_MIN_REPLICAS,
            Reason.ABOVE_MAX_REPLICAS,
        }
        current, history = d.desired_replicas, d.history


UNLIMITED = Behavior(
    scale_up=ScalingRules(
        0.0, SelectPolicy.MAX, (RatePolicy(RatePolicyType.PERCENT, 10_000, 1.0),)
    ),
    scale_down=ScalingRules(0.0, SelectPolicy.MAX, (RatePolicy(RatePolicyType.PERCENT, 100, 1.0),)),
)


@SETTINGS
@given(
    cfg=configs(),
    current=starts,
    reading=st.builds(
        Signals,
        in_flight=st.integers(0, 30),
        arrival_rate_per_s=st.sampled_from([None, 0.0, 1.0, 5.0]),
        service_time_s=st.sampled_from([None, 0.5, 1.0, 3.0]),
    ),
    last_active_ago=st.one_of(st.none(), st.floats(0, 500)),
)
def test_monotone_in_backlog_sweep(
    cfg: ScalerConfig, current: int, reading: Signals, last_active_ago: float | None
) -> None:
    # Without windows and limits, demand, tolerance, bounds and the zero rules are all
    # that decide; sweeping ready crosses the tolerance band and the zero thresholds.
    cfg = dataclasses.replace(cfg, behavior=UNLIMITED)
    current = min(max(current, cfg.min_replicas), cfg.max_replicas)
    now = 1000.0
    history = ScalerHistory(
        last_active_at=None if last_active_ago is None else now - last_active_ago
    )
    desired = [
        policy.decide(cfg, dataclasses.replace(reading, ready=ready), current, history, now)
        for ready in range(0, 150)
    ]
    for less, more in itertools.pairwise(desired):
        assert less.desired_replicas <= more.desired_replicas, (less, more)


@SETTINGS
@given(
    up_window=st.sampled_from([0.0, 10.0, 60.0]),
    down_window=st.sampled_from([0.0, 30.0, 300.0]),
    seq=st.lists(
        st.tuples(st.sampled_from([0.5, 1.0, 7.0, 40.0]), st.integers(0, 12), st.integers(0, 12)),
        max_size=60,
    ),
)
def test_compacted_recommendations_stabilize_like_the_full_list(
    up_window: float, down_window: float, seq: list[tuple[float, int, int]]
) -> None:
    rules = Behavior(
        scale_up=ScalingRules(up_window, SelectPolicy.MAX, ()),
        scale_down=ScalingRules(down_window, SelectPolicy.MAX, ()),
    )
    full: tuple[Recommendation, ...] = ()
    compacted: tuple[Recommendation, ...] = ()
    now = 0.0
    for dt, rec, current in seq:
        now += dt
        expected = behavior.stabilize(rec, current, full, rules, now)
        assert behavior.stabilize(rec, current, compacted, rules, now) == expected
        full = (*full, Recommendation(now, rec))
        compacted = behavior.record(compacted, rec, rules, now)
    assert len(compacted) <= len(full)
