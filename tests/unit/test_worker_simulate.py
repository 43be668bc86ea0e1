"""Unit: simulated service times and failures read from a job's payload `workload`."""

import random
import statistics

import pytest

from backlog_operator import pipeline
from backlog_operator.worker import simulate
from backlog_operator.worker.simulate import ServiceTime


def test_builtin_defaults_follow_the_original_pipeline_shape() -> None:
    means = {s: simulate.stage_work({}, s).service_time.mean_seconds for s in pipeline.STAGES}
    slow = {"parsing", "embedding"}
    fast = {"queued", "job_validated", "parse_validated", "parsed", "embedded"}
    assert min(means[s] for s in slow) > 10 * max(means[s] for s in fast)
    assert set(means) == set(pipeline.STAGES)
    assert simulate.stage_work(None, "parsing").failure_rate == 0.0


def test_payload_default_and_per_stage_overrides() -> None:
    payload = {
        "workload": {
            "serviceTime": {
                "default": {"meanSeconds": 0.2, "distribution": "Exponential"},
                "stages": {"parsing": {"meanSeconds": 2.0, "distribution": "Constant"}},
            },
            "failureRate": 0.01,
        }
    }
    parsing = simulate.stage_work(payload, "parsing")
    chunking = simulate.stage_work(payload, "chunking")
    # Missing fields fall back stage -> payload default -> built-in stage default.
    assert (parsing.service_time.mean_seconds, parsing.service_time.distribution) == (
        2.0,
        "Constant",
    )
    assert (chunking.service_time.mean_seconds, chunking.service_time.distribution) == (
        0.2,
        "Exponential",
    )
    assert parsing.failure_rate == chunking.failure_rate == 0.01


def test_per_stage_failure_rates_and_malformed_input() -> None:
    payload = {"workload": {"failureRate": {"default": 0.1, "stages": {"embedding": 2}}}}
    assert simulate.stage_work(payload, "parsing").failure_rate == 0.1
    assert simulate.stage_work(payload, "embedding").failure_rate == 1.0  # clamped
    junk = {
        "workload": {"serviceTime": {"default": {"distribution": "Weibull"}}, "failureRate": "x"}
    }
    work = simulate.stage_work(junk, "parsing")
    assert work.service_time == simulate.BUILTIN_SERVICE_TIMES["parsing"]
    assert work.failure_rate == 0.0


@pytest.mark.parametrize(
    ("distribution", "cv", "expected_cv"),
    [("Exponential", 1.0, 1.0), ("LogNormal", 0.5, 0.5), ("LogNormal", 2.0, 2.0)],
)
def test_distributions_have_the_requested_mean_and_spread(
    distribution: str, cv: float, expected_cv: float
) -> None:
    rng = random.Random(42)
    draws = [ServiceTime(0.3, distribution, cv).draw(rng) for _ in range(40_000)]
    mean = statistics.fmean(draws)
    assert mean == pytest.approx(0.3, rel=0.06)
    assert statistics.pstdev(draws) / mean == pytest.approx(expected_cv, rel=0.2)
    assert min(draws) >= 0


def test_constant_and_zero_are_exact() -> None:
    rng = random.Random(1)
    assert ServiceTime(0.25, "Constant").draw(rng) == 0.25
    assert ServiceTime(0.0, "LogNormal", 1).draw(rng) == 0.0


def test_plan_scales_time_and_draws_failures_at_the_rate() -> None:
    rng = random.Random(3)
    payload = {
        "workload": {
            "serviceTime": {"default": {"meanSeconds": 1.0, "distribution": "Constant"}},
            "failureRate": 0.25,
        }
    }
    plans = [simulate.plan(payload, "parsed", scale=0.5, rng=rng) for _ in range(4000)]
    assert {seconds for seconds, _ in plans} == {0.5}
    assert sum(fails for _, fails in plans) / len(plans) == pytest.approx(0.25, abs=0.03)
    assert simulate.plan(payload, "parsed", scale=0, rng=rng)[0] == 0.0
