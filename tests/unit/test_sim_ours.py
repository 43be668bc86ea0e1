"""The operator's policy in the simulator: decide() itself, signals as the source builds them,
evaluation on the poll interval and on debounced NOTIFY wake-ups."""

from __future__ import annotations

import pytest

from backlog_operator import policy
from backlog_operator.policy.types import PolicySpec, ScalerConfig, ScalerHistory
from backlog_operator.sim import engine, traces
from backlog_operator.sim.engine import ScaleIn, View
from backlog_operator.sim.ours import OursController, OursState
from backlog_operator.sim.service import Distribution, ServiceTime

CONST1 = ServiceTime(1.0, Distribution.CONSTANT)


def _view(**kw: float) -> View:
    base: dict[str, float] = dict(
        now=100.0,
        ready=12,
        in_flight=3,
        oldest_ready_s=4.0,
        target=3,
        pods=3,
        arrived=500,
        completed=485,
        window_arrivals=120,
        window_completions=60,
        window_service_s=90.0,
    )
    base.update(kw)
    return View(**base)  # type: ignore[arg-type]


def test_signals_are_computed_like_the_source() -> None:
    ours = OursController(ScalerConfig())
    signals, kept = ours.signals(OursState(ScalerHistory()), _view())
    assert (signals.ready, signals.in_flight, signals.oldest_ready_seconds) == (12, 3, 4.0)
    assert signals.arrival_rate_per_s == pytest.approx(2.0)  # 120 in the 60 s window
    assert signals.completion_rate_per_s == pytest.approx(1.0)
    assert signals.service_time_s == pytest.approx(1.5) == kept
    # No completion in the window: the last measured service time stays (sources/flow.py).
    quiet, _ = ours.signals(OursState(ScalerHistory(), 2.5), _view(window_completions=0))
    assert quiet.service_time_s == 2.5


def test_step_is_policy_decide() -> None:
    config = ScalerConfig(max_replicas=50, policy=PolicySpec(target_queue_wait_s=5.0))
    ours = OursController(config)
    view = _view()
    state = OursState(ScalerHistory())
    signals, _ = ours.signals(state, view)
    expected = policy.decide(config, signals, view.target, state.history, view.now)
    step = ours.step(state, view)
    assert step.desired == expected.desired_replicas
    assert step.state.history == expected.history
    assert step.next_eval_at == view.now + ours.poll_interval_s


def test_from_spec_reads_the_loop_fields_and_names_bad_ones() -> None:
    ours = OursController.from_spec(
        {"maxReplicas": 7, "pollIntervalSeconds": 2, "listen": False, "drainAwareScaleIn": False}
    )
    assert ours.config.max_replicas == 7
    assert (ours.poll_interval_s, ours.wake_debounce_s, ours.scale_in) == (
        2.0,
        None,
        ScaleIn.KILL,
    )
    with pytest.raises(ValueError, match=r"spec\.pollIntervalSeconds"):
        OursController.from_spec({"pollIntervalSeconds": 0})
    with pytest.raises(ValueError, match=r"spec\.policy\.type"):
        OursController.from_spec({"policy": {"type": "Magic"}})


@pytest.mark.parametrize(("listen", "first_scale"), [(True, 100.5 + 0.1), (False, 105.0)])
def test_notify_wakes_the_policy_after_the_debounce_else_the_next_poll(
    listen: bool, first_scale: float
) -> None:
    counts = [0] * 100 + [1] + [0] * 10  # one job at 100.5 s
    ours = OursController(ScalerConfig(), listen=listen)
    result = engine.simulate(traces.arrival_times(counts), ours, CONST1, startup_s=2.0)
    assert result.scale_log[0] == (pytest.approx(first_scale), 1)
    assert result.waits[0] == pytest.approx(first_scale - 100.5 + 2.0)
