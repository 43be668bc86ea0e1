"""The run row in backlog_operator.scaletest_runs: create, read, and stamp the timeline.

Every stamp is `coalesce(existing, now())`, so entering a phase twice (an
operator restart between the database write and the status patch) keeps the
first time and the first total. Called by scaletest/daemon.py and the tests.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from backlog_operator.api.scaletest import ScaleTestSpec
from backlog_operator.db import queries
from backlog_operator.scaletest.phases import Part, Phase, Verdict

query = functools.partial(queries.in_schema, "backlog_operator.scaletest", "queries.sql")


def run_id_for(name: str, uid: str) -> str:
    """A stable id per ScaleTest object: readable, and unique across re-creations."""
    return f"{name}-{uid.replace('-', '')[:8]}"


@dataclass(frozen=True)
class Run:
    """One row of scaletest_runs (the timeline the phase machine reads)."""

    run_id: str
    phase: str
    baseline_requested: int | None
    load_requested: int | None
    requested_rate: float | None
    baseline_throughput: float | None
    started_at: datetime
    baseline_started_at: datetime | None
    baseline_finished_at: datetime | None
    load_started_at: datetime | None
    load_finished_at: datetime | None
    drain_finished_at: datetime | None
    completed_at: datetime | None
    verdict: str | None
    results: Mapping[str, Any] | None
    cleaned_up_at: datetime | None

    def started(self, part: Part) -> datetime | None:
        return self.baseline_started_at if part is Part.BASELINE else self.load_started_at

    def requested(self, part: Part) -> int | None:
        return self.baseline_requested if part is Part.BASELINE else self.load_requested


Conn = psycopg.AsyncConnection[Any]


async def clock(conn: Conn) -> datetime:
    """The database's now(): the clock every stored timestamp uses."""
    cursor = await conn.execute(query("clock"))
    row = await cursor.fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


async def create(
    conn: Conn,
    *,
    run_id: str,
    namespace: str,
    name: str,
    uid: str,
    spec: ScaleTestSpec,
    raw_spec: Mapping[str, Any],
) -> None:
    await conn.execute(
        query("create_run"),
        {
            "run_id": run_id,
            "namespace": namespace,
            "name": name,
            "uid": uid,
            "mode": spec.mode.value,
            "profile": spec.load.profile.value,
            "schema": spec.schema,
            "spec": json.dumps(dict(raw_spec)),
        },
    )


async def get(conn: Conn, run_id: str) -> Run | None:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query("get_run"), {"run_id": run_id})
        row = await cursor.fetchone()
    return None if row is None else Run(**row)


async def set_phase(conn: Conn, run_id: str, phase: Phase) -> None:
    await conn.execute(query("set_phase"), {"run_id": run_id, "phase": phase.value})


async def start_part(
    conn: Conn, run_id: str, part: Part, requested: int, rate: float | None = None
) -> None:
    if part is Part.BASELINE:
        await conn.execute(query("start_baseline"), {"run_id": run_id, "requested": requested})
    else:
        await conn.execute(
            query("start_load"), {"run_id": run_id, "requested": requested, "rate": rate}
        )


async def finish_baseline(conn: Conn, run_id: str, throughput: float | None) -> None:
    await conn.execute(query("finish_baseline"), {"run_id": run_id, "throughput": throughput})


async def finish_load(conn: Conn, run_id: str) -> None:
    await conn.execute(query("finish_load"), {"run_id": run_id})


async def finish_drain(conn: Conn, run_id: str) -> None:
    await conn.execute(query("finish_drain"), {"run_id": run_id})


async def complete(conn: Conn, run_id: str, phase: Phase, verdict: Verdict | None) -> None:
    await conn.execute(
        query("complete_run"),
        {"run_id": run_id, "phase": phase.value, "verdict": verdict and verdict.value},
    )


async def produced(conn: Conn, run_id: str, part: Part) -> int:
    """Jobs the producers of a part have inserted (their persisted counts)."""
    cursor = await conn.execute(query("produced_total"), {"run_id": run_id, "part": part.value})
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class PartCounts:
    created: int
    done: int
    deadletter: int

    @property
    def finished(self) -> int:
        return self.done + self.deadletter


async def part_counts(conn: Conn, run_id: str, part: Part, schema: str) -> PartCounts:
    cursor = await conn.execute(
        query("part_counts", schema), {"run_id": run_id, "part": part.value}
    )
    row = await cursor.fetchone()
    return PartCounts(0, 0, 0) if row is None else PartCounts(*(int(v) for v in row))


async def delete_jobs(conn: Conn, run_id: str, schema: str) -> int:
    """Remove the run's synthetic documents and jobs; results rows stay."""
    cursor = await conn.execute(query("delete_run_jobs", schema), {"run_id": run_id})
    row = await cursor.fetchone()
    await conn.execute(query("mark_cleaned"), {"run_id": run_id})
    return int(row[0]) if row else 0
