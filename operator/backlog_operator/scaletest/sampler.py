"""The sampler: every sampleIntervalSeconds, a run's backlog per stage and its scalers.

`stage_samples(counts)` (pure) turns the (stage, state) counts of the run's jobs
into ready / in flight / done per stage, done meaning "has left the stage": the
job is at a later stage, or finished the last one. `record(...)` writes one tick
(with the database's lock waits, connections and oldest open transaction) into
scaletest_samples, scaletest_stage_samples and scaletest_scaler_samples.
Scaler replicas come from the BacklogScaler status, read by the caller
(scaletest/kubeio.py). Called by scaletest/daemon.py.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from backlog_operator import pipeline
from backlog_operator.db import queries
from backlog_operator.scaletest.phases import Part, Phase

query = functools.partial(queries.in_schema, "backlog_operator.scaletest", "queries.sql")

READY_STATES = frozenset({"queued", "retryable"})


@dataclass(frozen=True)
class StageSample:
    stage: str
    ready: int
    in_flight: int
    done: int


@dataclass(frozen=True)
class ScalerReading:
    """desired / current replicas from a BacklogScaler's status (None: not reported yet)."""

    desired: int | None
    current: int | None


def stage_samples(counts: Iterable[tuple[str, str, int]]) -> tuple[StageSample, ...]:
    """Per stage, in pipeline order, from (stage, state, count) rows."""
    rows = list(counts)
    order = {stage: i for i, stage in enumerate(pipeline.STAGES)}
    samples = []
    for stage in pipeline.STAGES:
        index = order[stage]
        ready = sum(n for s, state, n in rows if s == stage and state in READY_STATES)
        in_flight = sum(n for s, state, n in rows if s == stage and state == "working")
        done = sum(
            n
            for s, state, n in rows
            if order.get(s, -1) > index or (s == stage and state == "done")
        )
        samples.append(StageSample(stage, ready, in_flight, done))
    return tuple(samples)


@dataclass(frozen=True)
class Tick:
    """What one sample recorded (returned so the caller can update the status)."""

    at: datetime
    produced: int
    completed: int
    deadletter: int
    stages: tuple[StageSample, ...]


async def record(
    conn: psycopg.AsyncConnection[Any],
    *,
    run_id: str,
    phase: Phase,
    part: Part,
    schema: str,
    produced: int,
    scalers: Mapping[str, ScalerReading],
    at: datetime,
) -> Tick:
    cursor = await conn.execute(
        query("stage_state_counts", schema), {"run_id": run_id, "part": part.value}
    )
    counts = [(str(s), str(state), int(n)) for s, state, n in await cursor.fetchall()]
    stages = stage_samples(counts)
    cursor = await conn.execute(query("db_activity"))
    activity = await cursor.fetchone() or (None, None, None)
    completed = sum(n for _, state, n in counts if state == "done")
    deadletter = sum(n for _, state, n in counts if state == "deadletter")
    keys = {"run_id": run_id, "sampled_at": at}
    async with conn.transaction():
        await conn.execute(
            query("insert_sample"),
            {
                **keys,
                "phase": phase.value,
                "produced": produced,
                "completed": completed,
                "deadletter": deadletter,
                "lock_waits": activity[0],
                "connections": activity[1],
                "oldest_xact_seconds": activity[2],
            },
        )
        await conn.execute(
            query("insert_stage_samples"),
            {
                **keys,
                "stages": [s.stage for s in stages],
                "ready": [s.ready for s in stages],
                "in_flight": [s.in_flight for s in stages],
                "done": [s.done for s in stages],
            },
        )
        if scalers:
            names = sorted(scalers)
            await conn.execute(
                query("insert_scaler_samples"),
                {
                    **keys,
                    "scalers": names,
                    "desired": [scalers[n].desired for n in names],
                    "current": [scalers[n].current for n in names],
                },
            )
    return Tick(at, produced, completed, deadletter, stages)
