"""The discrete-event engine: conservation, determinism, Little's law, startup, scale-in."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backlog_operator.policy.types import ScalerConfig
from backlog_operator.sim import engine, run, traces
from backlog_operator.sim.engine import ScaleIn
from backlog_operator.sim.keda import KedaController
from backlog_operator.sim.ours import OursController
from backlog_operator.sim.scripted import Scripted
from backlog_operator.sim.service import Distribution, ServiceTime

EXP1 = ServiceTime(1.0, Distribution.EXPONENTIAL)


def _run(counts: list[int], controller: engine.Controller, **kw: object) -> engine.EngineResult:
    return engine.simulate(traces.arrival_times(counts), controller, EXP1, **kw)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(st.integers(0, 30), min_size=1, max_size=90),
    which=st.sampled_from(["ours", "keda", "fixed-kill"]),
    tail=st.sampled_from([0.0, 5.0, 3600.0]),
    seed=st.integers(0, 5),
)
def test_every_arrival_is_served_or_still_queued(
    counts: list[int], which: str, tail: float, seed: int
) -> None:
    controllers: dict[str, engine.Controller] = {
        "ours": OursController(ScalerConfig(max_replicas=20)),
        "keda": KedaController(),
        "fixed-kill": Scripted(((0, 6), (20, 2), (40, 5)), scale_in=ScaleIn.KILL),
    }
    controller = controllers[which]
    result = _run(counts, controller, seed=seed, max_tail_s=tail)
    assert result.arrived == sum(counts)
    assert result.completed + result.queued_at_end + result.in_flight_at_end == sum(counts)
    assert len(result.waits) == result.completed
    assert min(result.waits, default=0.0) >= 0.0
    if controller.scale_in is ScaleIn.DRAIN:
        assert result.killed_in_flight == 0  # drain-aware scale-in never kills work
    if tail == 3600.0 and which != "fixed-kill":
        assert result.completed == sum(counts)  # given time, every policy drains


def test_same_seed_same_run_and_another_seed_differs() -> None:
    counts = [5] * 200
    one = _run(counts, OursController(ScalerConfig(max_replicas=20)), seed=3)
    two = _run(counts, OursController(ScalerConfig(max_replicas=20)), seed=3)
    other = _run(counts, OursController(ScalerConfig(max_replicas=20)), seed=4)
    assert one.waits == two.waits and one.series == two.series and one.scale_log == two.scale_log
    assert one.waits != other.waits


def test_littles_law_on_a_steady_trace() -> None:
    # 8 jobs/s on 10 fixed replicas, exponential 1 s: L = lambda x W for the queue and the system.
    rate, seconds = 8, 6000
    result = _run([rate] * seconds, Scripted(((0, 10),)), seed=11, startup_s=0.0)
    s = result.series
    queue_wait = statistics.fmean(result.waits)
    mean_queue = statistics.fmean(s.backlog[:seconds])
    assert mean_queue == pytest.approx(rate * queue_wait, rel=0.1)
    in_system = sum(b + f for b, f in zip(s.backlog, s.in_flight, strict=True)) / seconds
    assert in_system == pytest.approx(rate * (queue_wait + 1.0), rel=0.05)


def test_pods_serve_only_after_the_startup_delay() -> None:
    result = _run([1] + [0] * 30, Scripted(((0, 1),)), startup_s=7.0)
    assert result.waits[0] == pytest.approx(7.0 - 0.5)


def test_drain_aware_scale_in_lets_jobs_finish_and_kill_requeues_them() -> None:
    counts = [4] * 10 + [0] * 50
    schedule = ((0, 4), (5.2, 1))  # scale in while all four are busy
    long_jobs = ServiceTime(3.0, Distribution.CONSTANT)
    arrivals = traces.arrival_times(counts)
    drained = engine.simulate(arrivals, Scripted(schedule), long_jobs, startup_s=0.0)
    killed = engine.simulate(
        arrivals, Scripted(schedule, scale_in=ScaleIn.KILL), long_jobs, startup_s=0.0
    )
    assert drained.killed_in_flight == 0
    assert killed.killed_in_flight == 3
    for result in (drained, killed):
        assert result.completed == 40  # killed jobs are retried, never lost
    # Killed work is done again: the same jobs finish later.
    assert killed.last_completion_s is not None and drained.last_completion_s is not None
    assert killed.last_completion_s > drained.last_completion_s


def test_compare_extends_runs_to_one_end_when_a_policy_keeps_replicas() -> None:
    trace = traces.from_counts([3] * 120)
    spec = {
        "minReplicas": 2,
        "maxReplicas": 20,
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
    }
    floor = OursController.from_spec(spec, name="floor")
    alone = run.compare(trace, [floor], run.RunSettings(EXP1, seed=1))["floor"]
    outcome = run.compare(trace, [floor, KedaController()], run.RunSettings(EXP1, seed=1))
    ends = {r.name: r.end_s for r in outcome.values()}
    assert alone.end_s < ends["keda-default"]  # settles at 2 long before KEDA reaches 0
    assert ends["floor"] == ends["keda-default"]  # so its run is extended to KEDA's end
    # Two replicas kept to the end are paid for to the end.
    assert outcome["floor"].series.replicas[-1] == 2
