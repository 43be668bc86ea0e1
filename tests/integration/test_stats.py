"""`backlog-operator stats` against a real PostgreSQL: the per-stage numbers it prints.

Rows are inserted with explicit timestamps (relative to the database's now()), so
every expected figure is known exactly; the command runs in-process through click.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from backlog_operator.report import stats

pytestmark = pytest.mark.integration


def _job(
    conn: psycopg.Connection,
    stage: str,
    state: str,
    *,
    created_ago: float = 60.0,
    updated_ago: float = 0.0,
    retry_in: float | None = None,
) -> uuid.UUID:
    doc = uuid.uuid4()
    conn.execute(
        "INSERT INTO upload_pipeline.documents (document_id, filename) VALUES (%s, 'f.pdf')",
        (doc,),
    )
    row = conn.execute(
        "INSERT INTO upload_pipeline.upload_jobs"
        " (document_id, stage, state, created_at, updated_at, retry_at)"
        " VALUES (%s, %s, %s, now() - make_interval(secs => %s),"
        "         now() - make_interval(secs => %s),"
        "         now() + make_interval(secs => %s)) RETURNING job_id",
        (doc, stage, state, created_ago, updated_ago, retry_in),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _done_event(
    conn: psycopg.Connection, job: uuid.UUID, stage: str, ago: float, secs: float
) -> None:
    conn.execute(
        "INSERT INTO upload_pipeline.events (job_id, stage, event_type, detail, created_at)"
        " VALUES (%s, %s, 'stage_done', jsonb_build_object('seconds', %s::float8),"
        "         now() - make_interval(secs => %s))",
        (job, stage, secs, ago),
    )


def _run(*args: str) -> str:
    result = CliRunner().invoke(stats.stats, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_stats_counts_ready_in_flight_done_and_latencies(migrated_dsn: str) -> None:
    # One transaction: every now() below is the same instant, so the expected figures are exact.
    with psycopg.connect(migrated_dsn) as conn:
        for _ in range(3):
            _job(conn, "parsing", "queued")
        _job(conn, "parsing", "retryable", retry_in=-5)  # due: ready
        _job(conn, "parsing", "retryable", retry_in=300)  # waiting: not ready
        for _ in range(2):
            _job(conn, "parsing", "working")
        _job(conn, "chunking", "queued")
        # Two finished jobs, created 100 s ago: parsing done after 10 s, chunking after 30 s
        # more (in stage 10 s and 30 s), embedded (done) at 90 s ago.
        finished = [
            _job(conn, "embedded", "done", created_ago=100, updated_ago=10) for _ in range(2)
        ]
        for job in finished:
            _done_event(conn, job, "parsing", ago=90, secs=0.5)
            _done_event(conn, job, "chunking", ago=60, secs=1.5)
        # A completion two hours ago is outside the hour.
        old = _job(conn, "embedded", "done", created_ago=8000, updated_ago=7300)
        _done_event(conn, old, "parsing", ago=7200, secs=9.0)

    out = json.loads(_run("--dsn", migrated_dsn, "--json"))
    by_stage: dict[str, Any] = {row["stage"]: row for row in out["stages"]}
    # Pipeline order, and only stages with something to show.
    assert [row["stage"] for row in out["stages"]] == ["parsing", "chunking", "embedded"]
    parsing, chunking, embedded = by_stage["parsing"], by_stage["chunking"], by_stage["embedded"]
    assert (parsing["ready"], parsing["in_flight"], parsing["done_last_hour"]) == (4, 2, 2)
    assert (chunking["ready"], chunking["in_flight"], chunking["done_last_hour"]) == (1, 0, 2)
    assert (embedded["ready"], embedded["in_flight"]) == (0, 0)
    # The original plan's figure: jobs created within the hour, updated_at - created_at.
    assert parsing["avg_updated_minus_created"] == pytest.approx(60.0, abs=0.01)
    assert embedded["avg_updated_minus_created"] == pytest.approx(90.0, abs=0.01)
    # Time in stage from events: creation -> parsing done = 10 s; parsing -> chunking = 30 s.
    assert parsing["in_stage_p95"] == pytest.approx(10.0, abs=0.01)
    assert chunking["in_stage_p50"] == pytest.approx(30.0, abs=0.01)
    assert parsing["service_p95"] == pytest.approx(0.5)
    assert chunking["service_p95"] == pytest.approx(1.5)


def test_stats_plain_table_and_watch(migrated_dsn: str) -> None:
    # One transaction: every now() below is the same instant, so the expected figures are exact.
    with psycopg.connect(migrated_dsn) as conn:
        _job(conn, "embedding", "queued")
        _job(conn, "embedding", "working")
    out = _run("--dsn", migrated_dsn, "--plain")
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["stage", "ready", "in", "flight"]
    embedding = next(line for line in lines if line.startswith("embedding"))
    assert embedding.split()[1:4] == ["1", "1", "0"]
    assert next(line for line in lines if line.startswith("total")).split()[1:3] == ["1", "1"]

    watched = _run("--dsn", migrated_dsn, "--watch", "--count", "2", "--interval", "0.1")
    assert watched.count("pipeline stages at") == 2


def test_stats_on_an_empty_pipeline_says_so(migrated_dsn: str) -> None:
    assert "no active jobs" in _run("--dsn", migrated_dsn)


def test_stats_unreachable_database_is_a_one_line_error() -> None:
    result = CliRunner().invoke(
        stats.stats, ["--dsn", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"]
    )
    assert result.exit_code == 1
    assert "database error" in result.output and "Traceback" not in result.output
