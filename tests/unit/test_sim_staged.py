"""ScaleTest `mode: Simulated`: chained stages, live-run-shaped results, the calibration hook."""

from __future__ import annotations

import pytest

from backlog_operator.policy.types import ScalerConfig
from backlog_operator.sim import calibrate, staged
from backlog_operator.sim.ours import OursController
from backlog_operator.sim.scripted import Scripted
from backlog_operator.sim.service import Distribution, ServiceTime

WORKLOAD = {
    "serviceTime": {
        "default": {"meanSeconds": 0.5, "distribution": "Constant"},
        "stages": {"parsing": {"meanSeconds": 1.0}},
    }
}


def test_workload_service_times_per_stage() -> None:
    assert staged.service_for(WORKLOAD, "parsing") == ServiceTime(1.0, Distribution.CONSTANT)
    assert staged.service_for(WORKLOAD, "chunking") == ServiceTime(0.5, Distribution.CONSTANT)
    assert staged.service_for({}, "x") == ServiceTime(0.2, Distribution.EXPONENTIAL)
    with pytest.raises(ValueError, match="serviceTime"):
        staged.service_for({"serviceTime": {"default": {"distribution": "Gamma"}}}, "x")


def test_fractional_rates_keep_their_total() -> None:
    assert staged.whole_counts([0.5] * 6) == [0, 1, 0, 1, 0, 1]
    assert sum(staged.whole_counts([2.3] * 10)) == 23


def test_two_fixed_stages_add_up_like_a_tandem_queue() -> None:
    # 1 job/s, constant 1 s then 0.5 s on plenty of replicas: nobody waits.
    result = staged.simulate_stages(
        [1.0] * 100,
        [
            staged.StageModel(
                "parsing", ServiceTime(1.0, Distribution.CONSTANT), Scripted(((0, 3),))
            ),
            staged.StageModel(
                "chunking", ServiceTime(0.5, Distribution.CONSTANT), Scripted(((0, 3),))
            ),
        ],
        startup_s=0.0,
    )
    assert result.jobs == result.done == 100
    assert result.end_to_end.p50 == pytest.approx(1.5)
    assert result.queue_wait_p95_seconds == pytest.approx(0.0)
    assert result.job_queue_wait_p95_seconds == pytest.approx(0.0)
    status = result.to_status()
    assert status["latency"]["stages"]["parsing"]["p95"] == pytest.approx(1.0)
    assert status["maxReplicas"] == {"parsing": 3, "chunking": 3}
    assert status["drainSeconds"] == pytest.approx(1.0, abs=0.01)  # last job: 99.5 + 1.5
    assert "timeToFirstScaleSeconds" not in status  # fixed replicas never scale


def _one_server_then_plenty(waitless_stages: int = 0) -> staged.StagedResult:
    # 2 jobs/s for 10 s (job i arrives at 0.25 + 0.5 i) into ONE replica serving 1 s
    # constant: job i starts at 0.25 + i, so it waits 0.5 i s; the second stage never waits.
    return staged.simulate_stages(
        [2.0] * 10,
        [
            staged.StageModel(
                "parsing", ServiceTime(1.0, Distribution.CONSTANT), Scripted(((0, 1),))
            ),
            staged.StageModel(
                "chunking", ServiceTime(1.0, Distribution.CONSTANT), Scripted(((0, 20),))
            ),
        ],
        startup_s=0.0,
        waitless_stages=waitless_stages,
    )


def test_queue_wait_p95_is_over_job_stage_pairs_as_in_a_live_run() -> None:
    result = _one_server_then_plenty()
    # 40 (job, stage) pairs: 21 zero waits, then 0.5 .. 9.5; nearest rank 38 -> 8.5 s.
    assert result.queue_wait_p95_seconds == pytest.approx(8.5)
    assert result.to_status()["queueWaitP95Seconds"] == pytest.approx(8.5)
    # The per-job summed figure keeps its own name and stays out of the status:
    # 20 jobs waiting 0 .. 9.5 s in all; nearest rank 19 -> 9.0 s.
    assert result.job_queue_wait_p95_seconds == pytest.approx(9.0)
    assert "jobQueueWaitP95Seconds" not in result.to_status()
    # Stages a job passes without being modelled count as zero-wait pairs, as live counts
    # every stage: 2 more per job -> 80 pairs, 61 zeros, nearest rank 76 -> 7.5 s.
    more = _one_server_then_plenty(waitless_stages=2)
    assert more.queue_wait_p95_seconds == pytest.approx(7.5)
    assert more.job_queue_wait_p95_seconds == pytest.approx(9.0)
    # Enough waitless stages put the p95 among the zeros.
    assert _one_server_then_plenty(waitless_stages=40).queue_wait_p95_seconds == 0.0
    with pytest.raises(ValueError, match="waitless_stages"):
        _one_server_then_plenty(waitless_stages=-1)


def test_scaled_stages_report_live_run_keys() -> None:
    result = staged.simulate_stages(
        [4.0] * 200,
        [
            staged.stage_model("parsing", WORKLOAD, "parse-workers", {"maxReplicas": 20}),
            staged.StageModel(
                "chunking",
                ServiceTime(0.25),
                OursController(ScalerConfig(max_replicas=5)),
                "chunk-workers",
            ),
        ],
        seed=1,
    )
    status = result.to_status()
    assert set(status) >= {
        "throughputPerSecond",
        "latency",
        "queueWaitP95Seconds",
        "drainSeconds",
        "maxReplicas",
        "replicaSeconds",
        "timeToFirstScaleSeconds",
        "bottleneckStage",
    }
    assert set(status["replicaSeconds"]) == {"parse-workers", "chunk-workers"}
    assert status["producerRatePerSecond"] == pytest.approx(4.0)
    assert 3.0 < status["throughputPerSecond"] <= 4.0
    assert status["latency"]["endToEnd"]["p95"] >= status["latency"]["stages"]["parsing"]["p95"]


def test_calibration_hook_flags_disagreement_over_25_percent() -> None:
    live = {"drainSeconds": 40.0, "queueWaitP95Seconds": 10.0}
    good = calibrate.compare_with_live({"drainSeconds": 45.0, "queueWaitP95Seconds": 8.0}, live)
    assert calibrate.calibrated(good)
    bad = calibrate.compare_with_live({"drainSeconds": 60.0, "queueWaitP95Seconds": 8.0}, live)
    assert not calibrate.calibrated(bad)
    assert [a.metric for a in bad if not a.within] == ["drainSeconds"]
    missing = calibrate.compare_with_live({}, live)
    assert not calibrate.calibrated(missing)
    nested = calibrate.compare_with_live(
        {"latency": {"endToEnd": {"p95": 3.0}}},
        {"latency": {"endToEnd": {"p95": 3.5}}},
        metrics=("latency.endToEnd.p95",),
    )
    assert calibrate.calibrated(nested)
