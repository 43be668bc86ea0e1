"""Percentiles, step integrals, SLO verdicts and bottleneck selection (pure)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backlog_operator.api.scaletest import Slo
from backlog_operator.scaletest import bottleneck, slo, stats
from backlog_operator.scaletest.phases import Verdict


def test_percentile_matches_percentile_cont() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert stats.percentile(values, 0.5) == 2.5
    assert stats.percentile(values, 0.95) == pytest.approx(3.85)
    assert stats.percentile(values, 0.0) == 1.0
    assert stats.percentile(values, 1.0) == 4.0
    assert stats.percentile([], 0.5) is None
    with pytest.raises(ValueError):
        stats.percentile(values, 1.5)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50), st.floats(0, 1))
def test_percentile_lies_within_the_values(values: list[float], q: float) -> None:
    result = stats.percentile(values, q)
    assert result is not None
    assert min(values) - 1e-6 <= result <= max(values) + 1e-6


def test_step_integral_is_replica_seconds() -> None:
    points = [stats.Point(0, 1), stats.Point(10, 3), stats.Point(12, 0)]
    assert stats.step_integral(points) == 10 + 6
    assert stats.step_integral(points, end=20) == 16
    assert stats.step_integral([stats.Point(5, 2)], end=8) == 6
    assert stats.step_integral([]) == 0


def test_first_rise() -> None:
    points = [stats.Point(0, 1), stats.Point(5, 1), stats.Point(7, 2), stats.Point(9, 1)]
    assert stats.first_rise(points, start=2) == 5
    assert stats.first_rise(points, start=8) is None
    assert stats.first_rise([], start=0) is None
    assert stats.maximum(points) == 2


def test_slo_evaluate_every_kind() -> None:
    spec = Slo(
        p95_end_to_end_seconds=10,
        p95_queue_wait_seconds=1,
        max_drain_seconds=60,
        max_lost_jobs=0,
        max_duplicate_completions=0,
        min_throughput_per_second=5,
    )
    observed = slo.Observed(
        p95_end_to_end_seconds=9.5,
        p95_queue_wait_seconds=2.0,
        drain_seconds=30,
        lost_jobs=0,
        duplicate_completions=1,
        throughput_per_second=5,
    )
    results = {r.name: r for r in slo.evaluate(spec, observed)}
    assert results["p95EndToEndSeconds"].met
    assert not results["p95QueueWaitSeconds"].met
    assert results["maxDrainSeconds"].met
    assert results["maxLostJobs"].met
    assert not results["maxDuplicateCompletions"].met
    assert results["minThroughputPerSecond"].met
    assert slo.verdict(tuple(results.values())) is Verdict.FAILED
    message = slo.describe_failures(tuple(results.values()))
    assert "p95QueueWaitSeconds: observed 2, target 1" in message
    assert "maxDuplicateCompletions" in message and "p95EndToEnd" not in message


def test_slo_only_set_fields_and_unmeasured_fails() -> None:
    results = slo.evaluate(Slo(p95_end_to_end_seconds=1), slo.Observed())
    assert [r.name for r in results] == ["p95EndToEndSeconds"]
    assert not results[0].met and results[0].observed is None
    assert results[0].to_status() == {"name": "p95EndToEndSeconds", "target": 1.0, "met": False}
    assert slo.verdict(()) is Verdict.PASSED


def test_bottleneck_is_largest_queue_wait_share_with_utilization() -> None:
    loads = [
        bottleneck.StageLoad("parsing", 30, 20),
        bottleneck.StageLoad("parsed", 0, 1),
        bottleneck.StageLoad("chunking", 10, 5),
        bottleneck.StageLoad("embedding", 60, 40),
    ]
    scalers = {"parse": ["parsing", "parsed"], "embed": ["embedding"]}
    replica_seconds = {"parse": 42.0, "embed": 50.0}
    found = bottleneck.select(loads, scalers, replica_seconds)
    assert found == bottleneck.Bottleneck("embedding", 0.6, 0.8)
    # A stage no scaler serves has no utilization.
    assert bottleneck.utilization("chunking", loads, scalers, replica_seconds) is None
    assert bottleneck.utilization("parsing", loads, scalers, replica_seconds) == 0.5


def test_no_queue_wait_means_no_bottleneck() -> None:
    assert bottleneck.select([bottleneck.StageLoad("parsing", 0, 3)], {}, {}) is None
