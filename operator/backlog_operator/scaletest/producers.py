"""Producers: `producers` concurrent asyncio tasks inserting a run's jobs on schedule.

Producer i of P owns the sequence numbers seq with seq % P == i. It inserts
each batch of documents and first-stage jobs together with its own progress row
(backlog_operator.scaletest_producers) in one statement, so the persisted count
is exactly what exists: a producer restarted after an operator crash reads its
count and resumes, and the deterministic keys (ON CONFLICT DO NOTHING) make a
replayed batch harmless. Pace: the cumulative schedule (profiles.Schedule.due),
measured from the part's start by the database clock. Called by
scaletest/daemon.py and tests/bench/test_producer.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from backlog_operator.db import queries
from backlog_operator.scaletest import profiles
from backlog_operator.scaletest.phases import Part

query = functools.partial(queries.in_schema, "backlog_operator.scaletest", "queries.sql")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProducerPlan:
    """Everything the producers of one part of one run need."""

    dsn: str
    run_id: str
    part: Part
    schedule: profiles.Schedule
    producers: int
    schema: str = "upload_pipeline"
    # Every job's payload (job_payload(); producers add `seq`): the worker reads "workload".
    payload: Mapping[str, Any] = field(default_factory=dict)
    batch_max: int = 1000
    # Never sleep less than this between batches: fewer, larger transactions.
    min_sleep_seconds: float = 0.01
    max_sleep_seconds: float = 0.25


def job_payload(run_id: str, part: Part, workload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of every job of a run part; the producers add `seq`."""
    return {"runId": run_id, "part": part.value, "workload": dict(workload)}


async def _connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=10)


async def seed(plan: ProducerPlan) -> float:
    """Create the progress rows; return the seconds elapsed since the part began (DB clock)."""
    async with await _connect(plan.dsn) as conn:
        await conn.execute(
            query("seed_producers"),
            {"run_id": plan.run_id, "part": plan.part.value, "producers": plan.producers},
        )
        cursor = await conn.execute(
            query("part_elapsed"), {"run_id": plan.run_id, "part": plan.part.value}
        )
        row = await cursor.fetchone()
    if row is None or row[0] is None:
        raise RuntimeError(f"run {plan.run_id}: part {plan.part} has no start time")
    return float(row[0])


async def produce_one(
    plan: ProducerPlan,
    index: int,
    stop: asyncio.Event,
    elapsed: Callable[[], float],
) -> int:
    """Run producer `index` until its share of the schedule exists or `stop` is set.

    Returns the jobs this call inserted (a resumed producer counts only its new ones).
    """
    payload = json.dumps(dict(plan.payload))
    keys = {"run_id": plan.run_id, "part": plan.part.value, "producer": index}
    share_total = profiles.share(plan.schedule.total, plan.producers, index)
    inserted = 0
    async with await _connect(plan.dsn) as conn:
        cursor = await conn.execute(query("producer_progress"), keys)
        row = await cursor.fetchone()
        produced = int(row[0]) if row else 0
        produce = query("produce", plan.schema)
        while produced < share_total and not stop.is_set():
            due = profiles.share(plan.schedule.due(elapsed()), plan.producers, index)
            if due > produced:
                count = min(due - produced, plan.batch_max)
                seqs = [index + plan.producers * k for k in range(produced, produced + count)]
                cursor = await conn.execute(
                    produce,
                    {**keys, "seqs": seqs, "produced": produced + count, "payload": payload},
                )
                result = await cursor.fetchone()
                produced += count
                inserted += int(result[0]) if result else 0
            # Sleep until this producer's next job is due (bounded both ways).
            next_seq = index + plan.producers * produced
            due_at = plan.schedule.seconds_until(next_seq + 1)
            wait = plan.max_sleep_seconds if due_at is None else due_at - elapsed()
            wait = min(max(wait, plan.min_sleep_seconds), plan.max_sleep_seconds)
            if produced < share_total:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
    return inserted


async def run(plan: ProducerPlan, stop: asyncio.Event) -> int:
    """Run every producer of `plan` to completion (or until `stop`); returns jobs inserted."""
    already = await seed(plan)
    started = time.monotonic()

    def elapsed() -> float:
        return already + (time.monotonic() - started)

    tasks = [
        asyncio.create_task(produce_one(plan, i, stop, elapsed), name=f"producer-{i}")
        for i in range(plan.producers)
    ]
    try:
        counts = await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    log.info("run %s %s: producers inserted %d jobs", plan.run_id, plan.part, sum(counts))
    return sum(counts)
