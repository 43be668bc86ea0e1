"""Read a recorded ScaleTest run from the results tables into report.model.RunData.

`find(conn, run)` accepts a run id or a ScaleTest name (its latest run);
`load(conn, run)` reads the run row, per-stage stats, SLO verdicts, the sampled
series and end-to-end latency percentiles over time (from the jobs when they
are still there, else from the events they left). Called by report/cli.py and
the demo driver.
"""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from typing import Any

import psycopg

from backlog_operator import pipeline
from backlog_operator.db import queries
from backlog_operator.report import model

query = functools.partial(queries.in_schema, "backlog_operator.report", "report.sql")

# Aim for about this many points on the latency chart.
LATENCY_BUCKETS = 60


class RunNotFound(LookupError):
    pass


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def find(conn: psycopg.Connection, run: str) -> model.RunInfo:
    row = conn.execute(query("find_run"), {"run": run}).fetchone()
    if row is None:
        raise RunNotFound(f"no ScaleTest run {run!r} (neither a run id nor a ScaleTest name)")
    values = list(row)
    values[6] = _json(values[6]) or {}
    values[21] = _json(values[21]) or {}
    values[22] = _json(values[22])
    return model.RunInfo(*values)


def _stage_order(stat: model.StageStat) -> tuple[str, int]:
    index = pipeline.STAGES.index(stat.stage) if stat.stage in pipeline.STAGES else 99
    return (stat.part, index)


def load(conn: psycopg.Connection, run: str) -> model.RunData:
    info = find(conn, run)
    keys = {"run_id": info.run_id, "origin": info.origin}
    stages = sorted(
        (model.StageStat(*r) for r in conn.execute(query("stage_stats"), keys).fetchall()),
        key=_stage_order,
    )
    slo = [
        model.SloRow(n, float(t), o, bool(m))
        for n, t, o, m in conn.execute(query("slo_results"), keys)
    ]
    samples = [model.Sample(*r) for r in conn.execute(query("samples"), keys)]
    stage_samples = [model.StageSample(*r) for r in conn.execute(query("stage_samples"), keys)]
    scaler_samples = [model.ScalerSample(*r) for r in conn.execute(query("scaler_samples"), keys)]
    end = info.drain_finished_at or info.completed_at or info.load_finished_at
    span = (end - info.origin).total_seconds() if end else 60.0
    bucket = max(1.0, round(span / LATENCY_BUCKETS))
    latency, source = _latency(conn, info, bucket, end)
    return model.RunData(
        info=info,
        stages=tuple(stages),
        slo=tuple(slo),
        samples=tuple(samples),
        stage_samples=tuple(stage_samples),
        scaler_samples=tuple(scaler_samples),
        latency=latency,
        latency_source=source,
        bucket_seconds=bucket,
    )


def _latency(
    conn: psycopg.Connection, info: model.RunInfo, bucket: float, end: Any
) -> tuple[tuple[model.LatencyPoint, ...], str]:
    params = {"run_id": info.run_id, "origin": info.origin, "bucket_s": bucket}
    try:
        rows = conn.execute(query("latency_series_jobs", info.schema), params).fetchall()
        source = "jobs"
        if not rows:
            until = (end or info.origin) + timedelta(seconds=bucket)
            rows = conn.execute(
                query("latency_series_events", info.schema), {**params, "until": until}
            ).fetchall()
            source = "events"
    except psycopg.errors.UndefinedTable:
        return (), "none"  # the pipeline schema is gone; the results tables remain
    points = tuple(
        model.LatencyPoint(float(at), int(n), *[*(p or ()), None, None, None][:3])
        for at, n, p in rows
    )
    return points, source if points else "none"
