"""mode Simulated: the ScaleTest spec through sim.staged gives live-shaped Results."""

import pytest

from backlog_operator import pipeline
from backlog_operator.api import scaletest as api
from backlog_operator.scaletest import profiles, simulated
from backlog_operator.scaletest.phases import Verdict
from backlog_operator.sim import staged
from backlog_operator.sim.service import Distribution

WORKLOAD = {
    "serviceTime": {
        "default": {"meanSeconds": 0.01, "distribution": "Constant"},
        "stages": {"parsing": {"meanSeconds": 0.5, "distribution": "Exponential"}},
    }
}


def _scaler(target: str, stages: list[str]) -> dict:
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "database": {"dsnSecretRef": {"name": "db"}},
        "source": {"stages": stages},
        "maxReplicas": 5,
    }


SCALERS = {
    "embed-workers": _scaler("embed-worker", ["embedding", "embedded"]),
    "parse-workers": _scaler("parse-worker", ["parsed", "parsing"]),
}


def _spec(slo: dict) -> api.ScaleTestSpec:
    return api.parse_spec(
        {
            "database": {"dsnSecretRef": {"name": "db"}},
            "mode": "Simulated",
            "scalers": list(SCALERS),
            "load": {
                "profile": "Spike",
                "ratePerSecond": 2,
                "peakRatePerSecond": 20,
                "spikeDurationSeconds": 10,
                "durationSeconds": 60,
            },
            "workload": WORKLOAD,
            "slo": slo,
        }
    )


def test_combined_service_sums_means_and_keeps_the_slowest_shape() -> None:
    service = simulated.combined_service(WORKLOAD, ["parsing", "parsed"])
    assert service.mean_s == pytest.approx(0.51)
    assert service.distribution is Distribution.EXPONENTIAL


def test_stage_models_follow_pipeline_order() -> None:
    models = simulated.stage_models(_spec({}), SCALERS)
    assert [(m.stage, m.scaler) for m in models] == [
        ("parsing", "parse-workers"),
        ("embedding", "embed-workers"),
    ]
    (alone,) = simulated.stage_models(_spec({}), {})
    assert alone.stage == "pipeline"


def test_simulated_run_results_and_verdicts() -> None:
    results = simulated.run(_spec({"p95EndToEndSeconds": 600, "maxLostJobs": 0}), SCALERS)
    assert results.jobs == results.done == 2 * 50 + 20 * 10
    assert results.lost_jobs == 0 and results.verdict is Verdict.PASSED
    assert {s.scaler for s in results.scalers} == set(SCALERS)
    assert all(s.max_replicas >= 1 for s in results.scalers)
    assert results.end_to_end.p95 is not None and results.end_to_end.p95 > 0.5
    status = results.to_status()
    assert set(status["maxReplicas"]) == set(SCALERS)
    failing = simulated.run(_spec({"p95EndToEndSeconds": 0.001}), SCALERS)
    assert failing.verdict is Verdict.FAILED
    assert [r.name for r in failing.slo if not r.met] == ["p95EndToEndSeconds"]


def test_simulated_queue_wait_p95_is_over_every_pipeline_stage_like_live() -> None:
    # Live (scaletest/analysis.sql) takes the p95 over every (job, stage) pair; the two
    # modelled queues stand for 2 of the pipeline's stages, the others count as zero waits.
    spec = _spec({"p95QueueWaitSeconds": 600})
    models = simulated.stage_models(spec, SCALERS)
    assert simulated.waitless_stages(models) == len(pipeline.STAGES) - 2 == 9
    results = simulated.run(spec, SCALERS)
    direct = staged.simulate_stages(profiles.rates(spec.load), models, waitless_stages=9)
    assert results.queue_wait_p95_seconds == direct.queue_wait_p95_seconds
    # The spike (20 jobs/s against at most 5 x 2 jobs/s) queues; the pair-wise p95 is
    # below the per-job summed one, which is not what the SLO or the status report.
    assert 0 < direct.queue_wait_p95_seconds < direct.job_queue_wait_p95_seconds
    (verdict,) = [r for r in results.slo if r.name == "p95QueueWaitSeconds"]
    assert verdict.observed == results.queue_wait_p95_seconds and verdict.met
    assert results.to_status()["queueWaitP95Seconds"] == pytest.approx(
        results.queue_wait_p95_seconds, abs=1e-3
    )
