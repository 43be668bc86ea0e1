"""Producers against a real PostgreSQL: exact totals, resumption without double seeding,
replayed batches inserting nothing, the payload the worker reads, and cleanup."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest

from backlog_operator.api import scaletest as api
from backlog_operator.scaletest import producers, profiles, runs
from backlog_operator.scaletest.phases import Part

pytestmark = pytest.mark.integration

WORKLOAD = {
    "serviceTime": {"default": {"meanSeconds": 0.01, "distribution": "Constant"}},
    "failureRate": 0.0,
}


async def _new_run(dsn: str) -> str:
    spec_raw = {
        "database": {"dsnSecretRef": {"name": "db"}},
        "load": {"profile": "Constant", "ratePerSecond": 40, "durationSeconds": 2},
        "workload": WORKLOAD,
    }
    run_id = runs.run_id_for("producers", str(uuid.uuid4()))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await runs.create(
            conn,
            run_id=run_id,
            namespace="ns",
            name="producers",
            uid="u",
            spec=api.parse_spec(spec_raw),
            raw_spec=spec_raw,
        )
    return run_id


def _plan(
    dsn: str, run_id: str, schedule: profiles.Schedule, count: int = 4
) -> producers.ProducerPlan:
    return producers.ProducerPlan(
        dsn=dsn,
        run_id=run_id,
        part=Part.LOAD,
        schedule=schedule,
        producers=count,
        payload=producers.job_payload(run_id, Part.LOAD, WORKLOAD),
    )


async def _start(dsn: str, run_id: str, schedule: profiles.Schedule) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await runs.start_part(conn, run_id, Part.LOAD, schedule.total, schedule.mean_rate)


def _jobs(dsn: str, run_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT j.idempotency_key, j.stage, j.state, j.payload, d.run_id"
            " FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d"
            " USING (document_id) WHERE j.run_id = %s",
            (run_id,),
        ).fetchall()


def test_producers_create_exactly_the_schedule(migrated_dsn: str) -> None:
    schedule = profiles.constant(40.0, 2, max_jobs=1000)
    assert schedule.total == 80

    async def scenario() -> int:
        run_id = await _new_run(migrated_dsn)
        await _start(migrated_dsn, run_id, schedule)
        inserted = await producers.run(_plan(migrated_dsn, run_id, schedule), asyncio.Event())
        assert inserted == 80
        return inserted

    asyncio.run(scenario())
    with psycopg.connect(migrated_dsn) as conn:
        run_id = conn.execute("SELECT run_id FROM backlog_operator.scaletest_runs").fetchone()[0]
        produced = conn.execute(
            "SELECT sum(produced) FROM backlog_operator.scaletest_producers WHERE run_id = %s",
            (run_id,),
        ).fetchone()[0]
    jobs = _jobs(migrated_dsn, run_id)
    assert len(jobs) == 80 == produced
    assert len({key for key, *_ in jobs}) == 80
    assert {(stage, state) for _, stage, state, _, _ in jobs} == {("queued", "queued")}
    payload = jobs[0][3]
    assert payload["workload"] == WORKLOAD  # what the reference worker reads
    assert payload["runId"] == run_id and payload["part"] == "load"
    assert sorted(p["seq"] for _, _, _, p, _ in jobs) == list(range(80))
    assert {doc_run for *_, doc_run in jobs} == {run_id}


def test_max_jobs_caps_the_schedule(migrated_dsn: str) -> None:
    schedule = profiles.constant(1000.0, 1, max_jobs=25)

    async def scenario() -> str:
        run_id = await _new_run(migrated_dsn)
        await _start(migrated_dsn, run_id, schedule)
        await producers.run(_plan(migrated_dsn, run_id, schedule, count=3), asyncio.Event())
        return run_id

    run_id = asyncio.run(scenario())
    assert len(_jobs(migrated_dsn, run_id)) == 25


def test_stopped_producers_resume_without_double_seeding(migrated_dsn: str) -> None:
    schedule = profiles.constant(50.0, 3, max_jobs=1000)  # 150 jobs over 3 s

    async def scenario() -> tuple[str, int, int, float]:
        run_id = await _new_run(migrated_dsn)
        await _start(migrated_dsn, run_id, schedule)
        stop = asyncio.Event()
        first = asyncio.create_task(producers.run(_plan(migrated_dsn, run_id, schedule), stop))
        await asyncio.sleep(1.0)
        stop.set()  # an operator going away mid-load
        inserted_first = await first
        async with await psycopg.AsyncConnection.connect(migrated_dsn, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT extract(epoch FROM now() - load_started_at)::float8"
                " FROM backlog_operator.scaletest_runs WHERE run_id = %s",
                (run_id,),
            )
            elapsed_after_stop = (await cur.fetchone())[0]
        # A new operator resumes the same part with the same schedule.
        inserted_second = await producers.run(
            _plan(migrated_dsn, run_id, schedule), asyncio.Event()
        )
        return run_id, inserted_first, inserted_second, elapsed_after_stop

    run_id, first, second, elapsed_after_stop = asyncio.run(scenario())
    # Paced: the first producers never ran ahead of the schedule.
    assert 0 < first <= schedule.due(elapsed_after_stop)
    assert first < 150
    assert first + second == 150
    assert len(_jobs(migrated_dsn, run_id)) == 150


def test_a_replayed_batch_inserts_nothing(migrated_dsn: str) -> None:
    schedule = profiles.constant(200.0, 1, max_jobs=1000)

    async def scenario() -> tuple[str, int]:
        run_id = await _new_run(migrated_dsn)
        await _start(migrated_dsn, run_id, schedule)
        await producers.run(_plan(migrated_dsn, run_id, schedule), asyncio.Event())
        # Pretend producer 0's progress row lagged behind what it had committed.
        async with await psycopg.AsyncConnection.connect(migrated_dsn, autocommit=True) as conn:
            await conn.execute(
                "UPDATE backlog_operator.scaletest_producers SET produced = 0"
                " WHERE run_id = %s AND producer = 0",
                (run_id,),
            )
        again = await producers.run(_plan(migrated_dsn, run_id, schedule), asyncio.Event())
        return run_id, again

    run_id, again = asyncio.run(scenario())
    assert again == 0
    assert len(_jobs(migrated_dsn, run_id)) == 200


def test_cleanup_removes_jobs_and_documents_but_keeps_results(migrated_dsn: str) -> None:
    schedule = profiles.constant(30.0, 1, max_jobs=1000)

    async def scenario() -> tuple[str, int]:
        run_id = await _new_run(migrated_dsn)
        await _start(migrated_dsn, run_id, schedule)
        await producers.run(_plan(migrated_dsn, run_id, schedule), asyncio.Event())
        async with await psycopg.AsyncConnection.connect(migrated_dsn, autocommit=True) as conn:
            removed = await runs.delete_jobs(conn, run_id, "upload_pipeline")
        return run_id, removed

    run_id, removed = asyncio.run(scenario())
    assert removed == 30
    assert _jobs(migrated_dsn, run_id) == []
    with psycopg.connect(migrated_dsn) as conn:
        row = conn.execute(
            "SELECT cleaned_up_at IS NOT NULL FROM backlog_operator.scaletest_runs"
            " WHERE run_id = %s",
            (run_id,),
        ).fetchone()
        assert row == (True,)
        docs = conn.execute(
            "SELECT count(*) FROM upload_pipeline.documents WHERE run_id = %s", (run_id,)
        ).fetchone()[0]
        assert docs == 0
