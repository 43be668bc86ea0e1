"""Sampler and analysis against a real PostgreSQL with the real reference worker:
the figures agree with the jobs and events in the database, SLOs get verdicts,
lost jobs and deadletters are counted, and everything lands in the results tables."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import psycopg
import pytest

from backlog_operator import pipeline
from backlog_operator.api import scaletest as api
from backlog_operator.scaletest import analysis, producers, profiles, runs, sampler
from backlog_operator.scaletest.phases import Part, Phase, Verdict
from backlog_operator.worker.base import BaseWorker
from backlog_operator.worker.settings import WorkerSettings

pytestmark = pytest.mark.integration

FAST = {"serviceTime": {"default": {"meanSeconds": 0.002, "distribution": "Constant"}}}


def _spec(workload: Mapping[str, Any], slo: Mapping[str, Any]) -> tuple[api.ScaleTestSpec, dict]:
    raw = {
        "database": {"dsnSecretRef": {"name": "db"}},
        "load": {"profile": "Constant", "ratePerSecond": 40, "durationSeconds": 2, "producers": 3},
        "workload": dict(workload),
        "slo": dict(slo),
        "drainTimeoutSeconds": 30,
    }
    return api.parse_spec(raw), raw


async def _experiment(
    dsn: str,
    spec: api.ScaleTestSpec,
    raw: dict,
    *,
    worker_settings: WorkerSettings | None,
    drain_timeout: float = 30.0,
) -> tuple[runs.Run, Any, list]:
    """Produce a Constant load, run workers on every stage, sample, drain, analyze."""
    run_id = runs.run_id_for("analysis", str(uuid.uuid4()))
    schedule = profiles.Schedule(profiles.rates(spec.load), spec.load.max_jobs)
    ticks = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await runs.create(
            conn, run_id=run_id, namespace="ns", name="analysis", uid="u", spec=spec, raw_spec=raw
        )
        await runs.start_part(conn, run_id, Part.LOAD, schedule.total, schedule.mean_rate)
        worker = BaseWorker(dsn, worker_settings) if worker_settings else None
        worker_task = asyncio.create_task(worker.run()) if worker else None
        plan = producers.ProducerPlan(
            dsn=dsn,
            run_id=run_id,
            part=Part.LOAD,
            schedule=schedule,
            producers=spec.load.producers,
            payload=producers.job_payload(run_id, Part.LOAD, spec.workload),
        )
        producing = asyncio.create_task(producers.run(plan, asyncio.Event()))
        replicas = 1
        deadline = asyncio.get_running_loop().time() + drain_timeout
        while True:
            at = await runs.clock(conn)
            produced = await runs.produced(conn, run_id, Part.LOAD)
            counts = await runs.part_counts(conn, run_id, Part.LOAD, spec.schema)
            replicas = 3 if produced > 20 else replicas  # a scaler series for the analysis
            tick = await sampler.record(
                conn,
                run_id=run_id,
                phase=Phase.LOADING,
                part=Part.LOAD,
                schema=spec.schema,
                produced=produced,
                at=at,
                scalers={"all-workers": sampler.ScalerReading(desired=replicas, current=replicas)},
            )
            ticks.append(tick)
            if producing.done() and counts.finished >= schedule.total:
                break
            if producing.done() and asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        await producing
        await runs.finish_load(conn, run_id)
        await runs.finish_drain(conn, run_id)
        if worker and worker_task:
            worker.stop()
            await worker_task
        run = await runs.get(conn, run_id)
        assert run is not None
        now = await runs.clock(conn)
        results = await analysis.analyze(
            conn, run=run, spec=spec, scaler_stages={"all-workers": list(pipeline.STAGES)}, now=now
        )
    return run, results, ticks


def _settings(**overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "metrics_port": 0,
        "concurrency": 8,
        "poll_interval_seconds": 0.1,
        "seed": 7,
        "worker_name": "analysis-worker",
        "backoff_base_seconds": 0.01,
        "backoff_cap_seconds": 0.05,
    }
    values.update(overrides)
    return WorkerSettings(**values)


def test_analysis_agrees_with_the_database(migrated_dsn: str) -> None:
    spec, raw = _spec(
        FAST,
        {
            "p95EndToEndSeconds": 60,
            "maxLostJobs": 0,
            "maxDuplicateCompletions": 0,
            "p95QueueWaitSeconds": 60,
        },
    )
    run, results, ticks = asyncio.run(
        _experiment(migrated_dsn, spec, raw, worker_settings=_settings())
    )
    assert results.jobs == 80 and results.done == 80
    assert results.lost_jobs == 0 and results.duplicate_completions == 0
    assert results.verdict is Verdict.PASSED
    assert [r.name for r in results.slo] == [
        "p95EndToEndSeconds",
        "p95QueueWaitSeconds",
        "maxLostJobs",
        "maxDuplicateCompletions",
    ]
    assert all(r.met for r in results.slo)
    # Every job went through every stage exactly once.
    by_stage = {s.stage: s for s in results.stages}
    assert list(by_stage) == list(pipeline.STAGES)
    assert all(s.completions == 80 for s in by_stage.values())
    # The original plan's figure: all done jobs sit at the last stage.
    assert by_stage["embedded"].avg_updated_minus_created is not None
    assert by_stage["parsing"].avg_updated_minus_created is None
    assert all(s.service_p50 == pytest.approx(0.002, abs=0.01) for s in by_stage.values())
    with psycopg.connect(migrated_dsn) as conn:
        e2e = conn.execute(
            "SELECT percentile_cont(0.95) WITHIN GROUP"
            " (ORDER BY extract(epoch FROM finished_at - created_at))"
            " FROM upload_pipeline.upload_jobs WHERE run_id = %s",
            (run.run_id,),
        ).fetchone()[0]
        stored = conn.execute(
            "SELECT count(*), sum(completions) FROM backlog_operator.scaletest_stage_stats"
            " WHERE run_id = %s AND part = 'load'",
            (run.run_id,),
        ).fetchone()
        slo_rows = conn.execute(
            "SELECT name, met FROM backlog_operator.scaletest_slo_results WHERE run_id = %s",
            (run.run_id,),
        ).fetchall()
        saved = conn.execute(
            "SELECT results, db_profile FROM backlog_operator.scaletest_runs WHERE run_id = %s",
            (run.run_id,),
        ).fetchone()
        samples = conn.execute(
            "SELECT count(*) FROM backlog_operator.scaletest_stage_samples WHERE run_id = %s",
            (run.run_id,),
        ).fetchone()[0]
    assert results.end_to_end.p95 == pytest.approx(e2e, abs=1e-3)
    assert results.end_to_end.p50 <= results.end_to_end.p95 <= results.end_to_end.p99
    assert stored == (11, 880)
    assert len(slo_rows) == 4 and all(met for _, met in slo_rows)
    assert saved[0]["jobs"] == 80 and saved[0]["verdict"] == "Passed"
    assert saved[1]["pg_stat_statements"] is False  # the test server has no extension
    assert saved[1]["top_statements"].startswith("absent")
    # Peaks from the samples: at least the sampler's and the worker's connections.
    assert saved[1]["max_connections_during_run"] >= 2
    assert saved[1]["max_lock_waits_during_run"] >= 0
    assert "idle" in saved[1]["connections_by_state"] or saved[1]["connections_by_state"]
    assert samples == 11 * len(ticks)
    # Scaler figures come from the samples: 1 -> 3 replicas.
    (scaler,) = results.scalers
    assert scaler.max_replicas == 3 and scaler.replica_seconds > 0
    assert results.time_to_first_scale_seconds is not None
    assert results.producer_rate_per_second == pytest.approx(40, rel=0.5)
    # The last sample saw every job done at the last stage.
    last = ticks[-1].stages
    assert last[-1].done == 80 and all(s.ready == 0 and s.in_flight == 0 for s in last)
    status = results.to_status()
    assert status["jobs"] == 80 and status["lostJobs"] == 0
    assert set(status["latency"]["stages"]) == set(pipeline.STAGES)


def test_impossible_slo_fails_naming_it(migrated_dsn: str) -> None:
    spec, raw = _spec(FAST, {"p95EndToEndSeconds": 0.000001, "maxLostJobs": 0})
    _run, results, _ = asyncio.run(
        _experiment(migrated_dsn, spec, raw, worker_settings=_settings())
    )
    assert results.verdict is Verdict.FAILED
    failed = [r.name for r in results.slo if not r.met]
    assert failed == ["p95EndToEndSeconds"]


def test_deadletters_are_counted_and_unfinished_jobs_are_lost(migrated_dsn: str) -> None:
    failing = {**FAST, "failureRate": {"default": 0.0, "stages": {"parsing": 1.0}}}
    spec, raw = _spec(failing, {"maxLostJobs": 0})
    _run, results, _ = asyncio.run(
        _experiment(migrated_dsn, spec, raw, worker_settings=_settings(max_retries=0))
    )
    assert results.deadletter == 80 and results.done == 0 and results.lost_jobs == 0
    assert {r.name: r.met for r in results.slo} == {"maxLostJobs": True}

    # No workers at all: nothing finishes, every job is lost and the SLO says so.
    spec, raw = _spec(FAST, {"maxLostJobs": 0})
    _run, results, _ = asyncio.run(
        _experiment(migrated_dsn, spec, raw, worker_settings=None, drain_timeout=0.5)
    )
    assert results.lost_jobs == 80
    assert results.verdict is Verdict.FAILED
    assert results.end_to_end.p95 is None
