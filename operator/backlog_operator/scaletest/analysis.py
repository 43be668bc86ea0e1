"""Analysis of a run part: the figures from jobs, events and samples, stored and returned.

`analyze(conn, ...)` reads (analysis.sql) per-stage latency, queue wait and
service time from the events the reference worker writes, end-to-end latency
and lost jobs from upload_jobs, the original plan's AVG(updated_at - created_at)
figure, the scalers' sampled replicas and a database profile; then it picks the
bottleneck and evaluates the SLOs (pure modules) and stores everything in the
results tables. `baseline(conn, ...)` does the per-stage part for the baseline.
Called by scaletest/daemon.py on entering Analyzing (and leaving Baseline).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import psycopg

from backlog_operator import pipeline
from backlog_operator.api.scaletest import ScaleTestSpec
from backlog_operator.db import queries
from backlog_operator.scaletest import bottleneck, slo
from backlog_operator.scaletest.phases import Part
from backlog_operator.scaletest.results import (
    DbProfile,
    Percentiles,
    Results,
    ScalerSample,
    StageFigures,
    scaler_figures,
)
from backlog_operator.scaletest.runs import Run

query = functools.partial(queries.in_schema, "backlog_operator.scaletest", "analysis.sql")

Conn = psycopg.AsyncConnection[Any]


async def _rows(conn: Conn, name: str, schema: str, params: Mapping[str, Any]) -> list[Any]:
    cursor = await conn.execute(query(name, schema), dict(params))
    return list(await cursor.fetchall())


async def stage_figures(
    conn: Conn, run_id: str, part: Part, schema: str
) -> tuple[tuple[StageFigures, ...], float | None]:
    """Per stage figures in pipeline order (stages no job reached are left out), and the
    p95 queue wait over every (job, stage) of the part."""
    keys = {"run_id": run_id, "part": part.value}
    original = {s: v for s, v in await _rows(conn, "original_plan_figure", schema, keys)}
    found = {}
    overall_wait_p95: float | None = None
    async with conn.transaction():
        # Sorts over every event of the run: in memory, not in temp files.
        await conn.execute(query("analysis_work_mem"))
        rows = await _rows(conn, "stage_figures", schema, keys)
    for row in rows:
        stage, completions, dups, latency, wait, wait_total, service, service_total = row
        if stage is None:  # the GROUPING SETS row over every stage
            overall_wait_p95 = Percentiles.of(wait).p95 if completions else None
            continue
        service = [*(service or ()), None, None]
        found[stage] = StageFigures(
            stage=stage,
            completions=int(completions),
            duplicate_completions=int(dups or 0),
            latency=Percentiles.of(latency),
            queue_wait=Percentiles.of(wait),
            queue_wait_total=float(wait_total or 0.0),
            service_p50=service[0],
            service_p95=service[1],
            service_total=float(service_total or 0.0),
            avg_updated_minus_created=original.get(stage),
        )
    # The original figure also exists for stages where jobs merely sit (e.g. the last).
    for stage, avg in original.items():
        found.setdefault(stage, StageFigures(stage, 0, avg_updated_minus_created=avg))
    return tuple(found[s] for s in pipeline.STAGES if s in found), overall_wait_p95


async def db_profile(conn: Conn, schema: str, run_id: str = "") -> DbProfile:
    has_pss = bool((await _rows(conn, "has_pg_stat_statements", schema, {}))[0][0])
    top: tuple[Mapping[str, Any], ...] = ()
    if has_pss:
        top = tuple(
            {"query": q, "calls": int(c), "total_ms": t, "mean_ms": m}
            for q, c, t, m in await _rows(conn, "top_statements", schema, {})
        )
    connections = {s: int(n) for s, n in await _rows(conn, "connections_by_state", schema, {})}
    lock_waits = int((await _rows(conn, "lock_waits", schema, {}))[0][0])
    health = await _rows(conn, "table_health", schema, {"schema_name": schema})
    live, dead, _vacuumed, frozen_age, oldest = health[0] if health else (0, 0, None, None, None)
    peaks = await _rows(conn, "activity_peaks", schema, {"run_id": run_id})
    peak_locks, peak_connections, peak_oldest = peaks[0] if peaks else (None, None, None)
    return DbProfile(
        pg_stat_statements=has_pss,
        top_statements=top,
        connections_by_state=connections,
        lock_waits=lock_waits,
        live_tuples=int(live),
        dead_tuples=int(dead),
        relfrozenxid_age=None if frozen_age is None else int(frozen_age),
        oldest_transaction_seconds=oldest,
        max_lock_waits_during_run=peak_locks,
        max_connections_during_run=peak_connections,
        max_oldest_transaction_seconds_during_run=peak_oldest,
    )


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


async def analyze(
    conn: Conn,
    *,
    run: Run,
    spec: ScaleTestSpec,
    scaler_stages: Mapping[str, Sequence[str]],
    now: datetime,
    pods_deleted: int = 0,
) -> Results:
    """Compute, store and return the load part's results and SLO verdicts."""
    schema = spec.schema
    keys = {"run_id": run.run_id, "part": Part.LOAD.value}
    stages, queue_wait_p95 = await stage_figures(conn, run.run_id, Part.LOAD, schema)
    (e2e,) = await _rows(conn, "end_to_end", schema, keys)
    jobs, done, deadletter, latency, _first, last_created, last_finished = e2e
    lost = int(jobs) - int(done) - int(deadletter)
    load_start = run.load_started_at or run.started_at
    end = run.drain_finished_at or now
    samples = [
        ScalerSample(s, at, d, c)
        for s, at, d, c in await _rows(conn, "scaler_samples", schema, {"run_id": run.run_id})
    ]
    scalers = scaler_figures(samples, load_start, end)
    replica_seconds = {s.scaler: s.replica_seconds for s in scalers}
    loads = [bottleneck.StageLoad(s.stage, s.queue_wait_total, s.service_total) for s in stages]
    stages = tuple(_with_utilization(s, loads, scaler_stages, replica_seconds) for s in stages)
    # Drain: from the end of the load to the last job finishing (or to giving up).
    drain_end = run.drain_finished_at if lost else (last_finished or run.drain_finished_at)
    drain = _seconds(drain_end, run.load_finished_at)
    throughput_window = _seconds(last_finished, load_start)
    production_window = max(
        float(spec.load.duration_seconds), _seconds(last_created, load_start) or 0.0
    )
    observed = slo.Observed(
        p95_end_to_end_seconds=Percentiles.of(latency).p95,
        p95_queue_wait_seconds=queue_wait_p95,
        drain_seconds=drain,
        lost_jobs=lost,
        duplicate_completions=sum(s.duplicate_completions for s in stages),
        throughput_per_second=(int(done) / throughput_window) if throughput_window else None,
    )
    verdicts = slo.evaluate(spec.slo, observed)
    results = Results(
        jobs=int(jobs),
        done=int(done),
        deadletter=int(deadletter),
        lost_jobs=lost,
        duplicate_completions=observed.duplicate_completions or 0,
        throughput_per_second=observed.throughput_per_second,
        producer_rate_per_second=int(jobs) / production_window if production_window else None,
        requested_rate_per_second=run.requested_rate,
        end_to_end=Percentiles.of(latency),
        queue_wait_p95_seconds=queue_wait_p95,
        drain_seconds=drain,
        stages=stages,
        scalers=scalers,
        bottleneck=bottleneck.select(loads, scaler_stages, replica_seconds),
        slo=verdicts,
        verdict=slo.verdict(verdicts),
        db_profile=await db_profile(conn, schema, run.run_id),
        pods_deleted=pods_deleted,
    )
    await store(conn, run.run_id, Part.LOAD, results)
    return results


def _with_utilization(
    figures: StageFigures,
    loads: Sequence[bottleneck.StageLoad],
    scaler_stages: Mapping[str, Sequence[str]],
    replica_seconds: Mapping[str, float],
) -> StageFigures:
    value = bottleneck.utilization(figures.stage, loads, scaler_stages, replica_seconds)
    return replace(figures, utilization=value)


async def store_stages(conn: Conn, run_id: str, part: Part, stages: Sequence[StageFigures]) -> None:
    for s in stages:
        await conn.execute(
            query("store_stage_stats"),
            {
                "run_id": run_id,
                "part": part.value,
                "stage": s.stage,
                "completions": s.completions,
                "duplicate_completions": s.duplicate_completions,
                "latency_p50": s.latency.p50,
                "latency_p95": s.latency.p95,
                "latency_p99": s.latency.p99,
                "queue_wait_p50": s.queue_wait.p50,
                "queue_wait_p95": s.queue_wait.p95,
                "queue_wait_total": s.queue_wait_total,
                "service_p50": s.service_p50,
                "service_p95": s.service_p95,
                "service_total": s.service_total,
                "avg_updated_minus_created": s.avg_updated_minus_created,
                "utilization": s.utilization,
            },
        )


async def store(conn: Conn, run_id: str, part: Part, results: Results) -> None:
    async with conn.transaction():
        await store_stages(conn, run_id, part, results.stages)
        for verdict in results.slo:
            await conn.execute(
                query("store_slo"),
                {
                    "run_id": run_id,
                    "name": verdict.name,
                    "target": verdict.target,
                    "observed": verdict.observed,
                    "met": verdict.met,
                },
            )
        profile = results.db_profile.to_json() if results.db_profile else None
        await conn.execute(
            query("store_results"),
            {
                "run_id": run_id,
                "results": json.dumps(results.to_json(), default=str),
                "db_profile": json.dumps(profile, default=str),
            },
        )


async def baseline(conn: Conn, *, run: Run, schema: str, now: datetime) -> dict[str, Any]:
    """Store the baseline's per-stage figures; return status.baseline (throughput included)."""
    stages, _wait_p95 = await stage_figures(conn, run.run_id, Part.BASELINE, schema)
    await store_stages(conn, run.run_id, Part.BASELINE, stages)
    keys = {"run_id": run.run_id, "part": Part.BASELINE.value}
    (e2e,) = await _rows(conn, "end_to_end", schema, keys)
    _jobs, done, _dead, _lat, _first, _last_created, last_finished = e2e
    window = _seconds(last_finished, run.baseline_started_at)
    throughput = int(done) / window if window else None
    return {
        "throughputPerSecond": None if throughput is None else round(throughput, 3),
        "jobs": int(_jobs),
        "stages": {
            s.stage: {
                k: v
                for k, v in {
                    "serviceP50Seconds": s.service_p50,
                    "serviceP95Seconds": s.service_p95,
                    "avgUpdatedMinusCreatedSeconds": s.avg_updated_minus_created,
                }.items()
                if v is not None
            }
            for s in stages
        },
    }
