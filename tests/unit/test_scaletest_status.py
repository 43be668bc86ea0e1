"""Pure builders around the ScaleTest shell: status patches, events, chaos selection,
cleanup policy, sampler per-stage counts and the results summary."""

import random
from datetime import UTC, datetime, timedelta

from backlog_operator import pipeline
from backlog_operator.api.scaletest import Cleanup
from backlog_operator.kube import events
from backlog_operator.scaletest import chaos, sampler, status
from backlog_operator.scaletest.effects import should_clean
from backlog_operator.scaletest.phases import Phase, Verdict
from backlog_operator.scaletest.results import (
    Percentiles,
    Results,
    ScalerSample,
    scaler_figures,
)
from backlog_operator.scaletest.slo import SloResult
from backlog_operator.scaletest.transitions import Transition, failed

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_phase_patch_sets_times_conditions_and_verdict() -> None:
    loading = Transition(Phase.LOADING, "LoadStarted", "Spike load started")
    first = status.phase_patch({}, loading, generation=1, now=T0, run_id="r")
    assert first["phase"] == "Loading" and first["runId"] == "r"
    assert first["startTime"] == first["phaseStartTime"] == "2026-01-01T00:00:00Z"
    assert "completionTime" not in first and "verdict" not in first
    kinds = {c["type"]: c for c in first["conditions"]}
    assert kinds["Running"]["status"] == "True" and kinds["Completed"]["status"] == "False"

    later = T0 + timedelta(seconds=30)
    previous = {
        **first,
        "conditions": [
            *first["conditions"],
            {"type": "Ready", "status": "True", "reason": "Connected"},
        ],
    }
    done = Transition(Phase.SUCCEEDED, "SLOsMet", "every SLO met")
    last = status.phase_patch(
        previous,
        done,
        generation=1,
        now=later,
        run_id="r",
        verdict=Verdict.PASSED,
        extra={"baseline": {"jobs": 3}},
    )
    assert "startTime" not in last  # kept from the first patch
    assert last["completionTime"] == "2026-01-01T00:00:30Z"
    assert last["verdict"] == "Passed" and last["baseline"] == {"jobs": 3}
    kinds = {c["type"]: c for c in last["conditions"]}
    assert kinds["Completed"]["status"] == "True" and kinds["Completed"]["reason"] == "SLOsMet"
    assert kinds["Running"]["status"] == "False"
    assert kinds["Ready"]["reason"] == "Connected"  # other conditions carried over


def test_ready_patch_and_change_detection() -> None:
    assert status.ready_changed({}, True, "Connected")
    patch = status.ready_patch({}, False, "SecretError", "no Secret db", 2, T0)
    (ready,) = patch["conditions"]
    assert ready["status"] == "False" and ready["observedGeneration"] == 2
    assert not status.ready_changed(patch, False, "SecretError")
    assert status.ready_changed(patch, True, "Connected")


def test_events_warn_only_on_failure() -> None:
    ok = status.phase_event(Transition(Phase.DRAINING, "LoadFinished", "100 jobs"))
    assert ok.type == events.NORMAL and ok.reason == "LoadFinished"
    assert ok.message == "Draining: 100 jobs"
    bad = status.phase_event(failed("SLONotMet", "p95EndToEndSeconds"))
    assert bad.type == events.WARNING


def test_progress_patch() -> None:
    patch = status.progress_patch(
        requested=10, created=4, done=2, deadletter=1, pods_deleted=3, requested_rate=2.0
    )
    assert patch == {
        "progress": {
            "jobsRequested": 10,
            "jobsCreated": 4,
            "jobsDone": 2,
            "jobsDeadletter": 1,
            "podsDeleted": 3,
            "requestedRatePerSecond": 2.0,
        }
    }


def test_selector_string() -> None:
    selector = {
        "matchLabels": {"app": "parse-worker", "tier": "w"},
        "matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a", "b"]},
            {"key": "old", "operator": "NotIn", "values": ["x"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert chaos.selector_string(selector) == (
        "app=parse-worker,tier=w,zone in (a,b),old notin (x),gpu,!legacy"
    )


def test_chaos_picks_only_live_pods() -> None:
    pods = [
        {"metadata": {"name": "a"}, "status": {"phase": "Running"}},
        {"metadata": {"name": "b", "deletionTimestamp": "now"}, "status": {"phase": "Running"}},
        {"metadata": {"name": "c"}, "status": {"phase": "Succeeded"}},
        {"metadata": {"name": "d"}, "status": {"phase": "Running"}},
    ]
    assert sorted(chaos.pick(pods, 5, random.Random(1))) == ["a", "d"]
    assert len(chaos.pick(pods, 1, random.Random(1))) == 1
    assert chaos.pick([], 1, random.Random(1)) == []


def test_cleanup_policy() -> None:
    assert should_clean(Cleanup.ALWAYS, None)
    assert should_clean(Cleanup.ALWAYS, Verdict.FAILED)
    assert should_clean(Cleanup.ON_SUCCESS, Verdict.PASSED)
    assert not should_clean(Cleanup.ON_SUCCESS, Verdict.FAILED)
    assert not should_clean(Cleanup.ON_SUCCESS, None)
    assert not should_clean(Cleanup.NEVER, Verdict.PASSED)


def test_stage_samples_count_done_as_left_the_stage() -> None:
    counts = [
        ("parsing", "queued", 3),
        ("parsing", "working", 2),
        ("parsing", "retryable", 1),
        ("chunking", "queued", 4),
        ("embedded", "done", 5),
        ("parsing", "deadletter", 7),
    ]
    by_stage = {s.stage: s for s in sampler.stage_samples(counts)}
    assert list(by_stage) == list(pipeline.STAGES)
    assert by_stage["parsing"] == sampler.StageSample("parsing", 4, 2, 9)
    assert by_stage["queued"].done == 22  # every job has left `queued`
    assert by_stage["chunking"] == sampler.StageSample("chunking", 4, 0, 5)
    assert by_stage["embedded"] == sampler.StageSample("embedded", 0, 0, 5)


def test_scaler_figures_from_samples() -> None:
    at = [T0 + timedelta(seconds=s) for s in range(6)]
    samples = [
        ScalerSample("parse", at[0], 1, 1),
        ScalerSample("parse", at[1], 4, 1),
        ScalerSample("parse", at[2], 4, 4),
        ScalerSample("parse", at[4], 1, 1),
        ScalerSample("embed", at[0], 2, 2),
    ]
    figures = {f.scaler: f for f in scaler_figures(samples, at[0], at[5])}
    assert figures["parse"].max_replicas == 4
    assert figures["parse"].replica_seconds == 1 + 1 + 4 * 2 + 1
    assert figures["parse"].first_scale_up_seconds == 1.0
    assert figures["embed"].first_scale_up_seconds is None
    assert figures["embed"].replica_seconds == 10


def test_results_status_is_bounded_and_complete() -> None:
    results = Results(
        jobs=10,
        done=9,
        deadletter=1,
        lost_jobs=0,
        duplicate_completions=0,
        throughput_per_second=2.34567,
        producer_rate_per_second=3.0,
        requested_rate_per_second=3.0,
        end_to_end=Percentiles(1.0, 2.0, None),
        queue_wait_p95_seconds=None,
        drain_seconds=4.0,
        slo=(SloResult("maxLostJobs", 0, 0, True),),
        verdict=Verdict.PASSED,
    )
    out = results.to_status()
    assert out["throughputPerSecond"] == 2.346
    assert out["latency"] == {"endToEnd": {"p50": 1.0, "p95": 2.0}, "stages": {}}
    assert "queueWaitP95Seconds" not in out and "bottleneckStage" not in out
    assert out["slo"] == [{"name": "maxLostJobs", "target": 0, "observed": 0, "met": True}]
    full = results.to_json()
    assert full["verdict"] == "Passed" and full["deadletter"] == 1


def test_context_from_a_body_resumes_phase_run_id_and_pods_deleted() -> None:
    from backlog_operator.scaletest import daemon

    body = {
        "metadata": {"namespace": "ns", "name": "spike", "uid": "1234abcd-ef", "generation": 2},
        "spec": {
            "database": {"dsnSecretRef": {"name": "db"}},
            "load": {"profile": "Constant", "ratePerSecond": 1},
        },
        "status": {"phase": "Loading", "runId": "spike-older", "progress": {"podsDeleted": 4}},
    }
    ctx = daemon.context_from(body)
    assert (ctx.phase, ctx.run_id, ctx.pods_deleted, ctx.generation) == (
        Phase.LOADING,
        "spike-older",
        4,
        2,
    )
    fresh = daemon.context_from({**body, "status": {}})
    assert fresh.phase is Phase.PENDING and fresh.run_id == "spike-1234abcd"
