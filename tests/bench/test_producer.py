"""Benchmark: the ScaleTest producers' sustained insert rate into a throw-away PostgreSQL.

Writes bench/results/producer.json with `jobs_per_s` for 10 producers (goal:
>= 5,000 jobs/s, so the load generator is never an experiment's bottleneck) and,
measured side by side in the same run, 1 producer. The schedule asks for far more
than the producers can do, so they run flat out in batches of `batch_max`. A figure,
not an assertion: `make bench` reports it; the test only checks the jobs exist.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from backlog_operator.api import scaletest as api
from backlog_operator.scaletest import producers, profiles, runs
from backlog_operator.scaletest.phases import Part

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "producer.json"
JOBS = int(os.environ.get("BENCH_PRODUCER_JOBS", "60000"))
WORKLOAD = {"serviceTime": {"default": {"meanSeconds": 0.2, "distribution": "Exponential"}}}


async def _measure(dsn: str, producer_count: int, jobs: int) -> dict[str, Any]:
    spec_raw = {
        "database": {"dsnSecretRef": {"name": "db"}},
        "load": {
            "profile": "Constant",
            "ratePerSecond": 1_000_000,
            "durationSeconds": 1,
            "producers": producer_count,
        },
    }
    run_id = runs.run_id_for(f"bench-{producer_count}", str(uuid.uuid4()))
    schedule = profiles.constant(1_000_000.0, 1, max_jobs=jobs)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await runs.create(
            conn,
            run_id=run_id,
            namespace="bench",
            name="bench",
            uid="u",
            spec=api.parse_spec(spec_raw),
            raw_spec=spec_raw,
        )
        await runs.start_part(conn, run_id, Part.LOAD, schedule.total, schedule.mean_rate)
    plan = producers.ProducerPlan(
        dsn=dsn,
        run_id=run_id,
        part=Part.LOAD,
        schedule=schedule,
        producers=producer_count,
        payload=producers.job_payload(run_id, Part.LOAD, WORKLOAD),
    )
    started = time.perf_counter()
    inserted = await producers.run(plan, asyncio.Event())
    seconds = time.perf_counter() - started
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM upload_pipeline.upload_jobs WHERE run_id = %s", (run_id,)
        )
        row = await cursor.fetchone()
    assert row is not None and row[0] == inserted == jobs
    return {
        "producers": producer_count,
        "jobs": inserted,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(inserted / seconds, 1),
        "batch_max": plan.batch_max,
    }


def test_producer_insert_rate(migrated_dsn: str) -> None:
    ten = asyncio.run(_measure(migrated_dsn, 10, JOBS))
    one = asyncio.run(_measure(migrated_dsn, 1, JOBS // 4))
    with psycopg.connect(migrated_dsn) as conn:
        server_version = conn.execute("SHOW server_version").fetchone()[0]
    result = {
        "benchmark": "scaletest producers: documents + upload_jobs inserted per second",
        "jobs_per_s": ten["jobs_per_s"],
        "goal_jobs_per_s": 5000,
        "meets_goal": ten["jobs_per_s"] >= 5000,
        "ten_producers": ten,
        "one_producer": one,
        "ratio_ten_to_one": round(ten["jobs_per_s"] / one["jobs_per_s"], 2),
        "cpu_count": os.cpu_count(),
        "postgres": server_version,
        "note": "one throw-away server on the same machine; each job is a document row, a "
        "job row (with its NOTIFY trigger) and a progress update, one statement "
        "per batch",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
