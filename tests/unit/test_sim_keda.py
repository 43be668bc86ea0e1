"""The KEDA + HPA default model reproduces its documented reaction times and rules."""

from __future__ import annotations

import pytest

from backlog_operator.sim import engine, traces
from backlog_operator.sim.keda import KedaConfig, KedaController, KedaState, hpa_sync
from backlog_operator.sim.keda_spec import parse_scaled_object
from backlog_operator.sim.service import Distribution, ServiceTime

CONST1 = ServiceTime(1.0, Distribution.CONSTANT)


def _step_run(config: KedaConfig) -> engine.EngineResult:
    counts = [0] * 10 + [100] * 200  # nothing, then a step at t=10
    return engine.simulate(
        traces.arrival_times(counts), KedaController(config), CONST1, startup_s=5.0
    )


def test_first_scale_at_the_next_poll_then_hpa_steps_every_15_s() -> None:
    log = _step_run(KedaConfig())
    # One reading per 15 s tick (KEDA's 30 s polls coincide with HPA syncs), from t=0.
    assert log.evaluations == int(log.end_s // 15) + 1
    # 0 -> 1 by KEDA at its poll at 30 s; then the HPA every 15 s, max(100 %, +4 pods),
    # capped at maxReplicaCount 100.
    assert log.scale_log[:7] == (
        (30.0, 1),
        (45.0, 5),
        (60.0, 10),
        (75.0, 20),
        (90.0, 40),
        (105.0, 80),
        (120.0, 100),
    )


def test_scale_down_waits_for_the_stabilization_window_then_zero_after_cooldown() -> None:
    result = _step_run(KedaConfig())
    s = result.series
    # The HPA recommends fewer than 100 once the metric (ready + in flight) drops under
    # 1,000 (x 1.1 tolerance aside); the 300 s window then holds 100 for 300 s more.
    low_at = next(t + 1 for t in range(130, len(s.backlog)) if s.backlog[t] + s.in_flight[t] < 1000)
    first_down = next(t for t, r in result.scale_log if t > 130 and r < 100)
    assert low_at + 300 - 15 <= first_down <= low_at + 300 + 15
    assert first_down % 15 == 0  # on an HPA sync
    drained_at = result.last_completion_s
    assert drained_at is not None
    zero_at = next(t for t, r in result.scale_log if r == 0)
    assert zero_at % 30 == 0  # only KEDA's poll goes to zero
    # cooldownPeriod counts from the last active poll (the last one before the drain).
    assert 300 <= zero_at - (drained_at // 30) * 30 <= 330


def test_activation_threshold_keeps_zero_until_exceeded() -> None:
    counts = [1] * 5 + [0] * 100  # 5 jobs, threshold 5: never active
    result = engine.simulate(
        traces.arrival_times(counts),
        KedaController(KedaConfig(activation_value=5)),
        CONST1,
        max_tail_s=120,
    )
    assert result.scale_log == ()
    assert result.queued_at_end == 5


@pytest.mark.parametrize(
    ("metric", "current", "expected"),
    [
        (105.0, 10, 10),  # ratio 1.05: within the 10 % tolerance
        (115.0, 10, 12),  # ratio 1.15: ceil(115 / 10)
        (500.0, 2, 6),  # scale-up limit: max(2 x 2, 2 + 4)
        (1000.0, 10, 20),  # scale-up limit: max(10 x 2, 10 + 4)
    ],
)
def test_hpa_sync_tolerance_and_scale_up_limits(metric: float, current: int, expected: int) -> None:
    desired, _ = hpa_sync(KedaConfig(), KedaState(0, 0), metric, current, now=100.0)
    assert desired == expected


def test_hpa_scale_down_takes_the_highest_recommendation_of_300_s() -> None:
    config = KedaConfig()
    state = KedaState(0, 0)
    desired, state = hpa_sync(config, state, 200.0, 20, now=0.0)
    assert desired == 20
    for now in range(15, 300, 15):
        desired, state = hpa_sync(config, state, 10.0, 20, now=float(now))
        assert desired == 20  # 20 is still in the window
    desired, state = hpa_sync(config, state, 10.0, 20, now=300.0)
    assert desired == 1


def test_scaled_object_yaml_fields_and_errors() -> None:
    config = parse_scaled_object(
        {
            "kind": "ScaledObject",
            "spec": {
                "pollingInterval": 10,
                "cooldownPeriod": 60,
                "maxReplicaCount": 50,
                "triggers": [
                    {"metadata": {"targetQueryValue": "5", "activationTargetQueryValue": "2"}}
                ],
                "advanced": {
                    "horizontalPodAutoscalerConfig": {
                        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}
                    }
                },
            },
        }
    )
    assert (config.polling_interval_s, config.cooldown_s, config.max_replicas) == (10, 60, 50)
    assert (config.target_value, config.activation_value) == (5.0, 2.0)
    assert config.scale_down.stabilization_window_s == 30
    # Omitted behavior fields are HPA's defaults, not the BacklogScaler's (0006).
    assert config.scale_up.policies == KedaConfig().scale_up.policies
    assert [p.value for p in config.scale_up.policies] == [100, 4]
    assert KedaConfig().scale_down.stabilization_window_s == 300
    with pytest.raises(ValueError, match=r"spec\.triggers\[0\]\.metadata\.targetQueryValue"):
        parse_scaled_object({"spec": {"triggers": [{"metadata": {}}]}})
    with pytest.raises(ValueError, match=r"horizontalPodAutoscalerConfig\.behavior\.scaleDown"):
        parse_scaled_object(
            {
                "spec": {
                    "triggers": [{"metadata": {"targetQueryValue": 1}}],
                    "advanced": {
                        "horizontalPodAutoscalerConfig": {
                            "behavior": {"scaleDown": {"stabilizationWindowSeconds": -1}}
                        }
                    },
                }
            }
        )
