"""The upload_pipeline schema on a real PostgreSQL: constraints, indexes and triggers behave."""

import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from backlog_operator import pipeline

pytestmark = pytest.mark.integration

SENTINEL = "sentinel"


@pytest.fixture
def conn(migrated_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(migrated_dsn, autocommit=True) as connection:
        yield connection


def add_document(conn: psycopg.Connection) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO upload_pipeline.documents (filename, content_type, size_bytes)"
        " VALUES ('a.pdf', 'application/pdf', 10) RETURNING document_id"
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def add_job(
    conn: psycopg.Connection, document_id: uuid.UUID, stage: str = "parsing", state: str = "queued"
) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO upload_pipeline.upload_jobs (document_id, stage, state)"
        " VALUES (%s, %s, %s) RETURNING job_id",
        (document_id, stage, state),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def notifications_until_sentinel(listener: psycopg.Connection) -> list[str]:
    """Payloads received up to and including the sentinel sent last by the writer."""
    received: list[str] = []
    for notify in listener.notifies(timeout=30):
        received.append(notify.payload)
        if notify.payload == SENTINEL:
            return received
    raise AssertionError(f"sentinel never arrived; got {received}")


@pytest.fixture
def listener(migrated_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(migrated_dsn, autocommit=True) as connection:
        connection.execute(f"LISTEN {pipeline.ready_channel()}")
        yield connection


def send_sentinel(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (pipeline.ready_channel(), SENTINEL))


@pytest.mark.parametrize("column", ["stage", "state"])
def test_unknown_stage_or_state_is_refused(conn: psycopg.Connection, column: str) -> None:
    document_id = add_document(conn)
    values = {"stage": "parsing", "state": "queued", column: "bogus"}
    with pytest.raises(errors.CheckViolation):
        add_job(conn, document_id, values["stage"], values["state"])


def test_every_known_stage_and_state_is_accepted(conn: psycopg.Connection) -> None:
    document_id = add_document(conn)
    for stage in pipeline.STAGES:
        for state in pipeline.STATES:
            # Terminal states are outside the one-active-job rule, so all combinations fit.
            if state not in pipeline.ACTIVE_STATES:
                add_job(conn, document_id, stage, state)
        add_job(conn, document_id, stage, "queued")
    row = conn.execute("SELECT count(*) FROM upload_pipeline.upload_jobs").fetchone()
    assert row == (len(pipeline.STAGES) * (len(pipeline.STATES) - len(pipeline.ACTIVE_STATES) + 1),)


def test_unknown_event_type_is_refused(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO upload_pipeline.events (event_type) VALUES ('stage_done')")
    with pytest.raises(errors.CheckViolation):
        conn.execute("INSERT INTO upload_pipeline.events (event_type) VALUES ('exploded')")


def test_one_active_job_per_document_and_stage(conn: psycopg.Connection) -> None:
    document_id = add_document(conn)
    first = add_job(conn, document_id, "parsing", "queued")
    with pytest.raises(errors.UniqueViolation):
        add_job(conn, document_id, "parsing", "retryable")
    # Once the first is finished, the stage may run again; other stages never conflict.
    conn.execute(
        "UPDATE upload_pipeline.upload_jobs SET state = 'done' WHERE job_id = %s", (first,)
    )
    add_job(conn, document_id, "parsing", "queued")
    add_job(conn, document_id, "chunking", "queued")


def test_inserting_a_ready_job_notifies_its_stage(
    conn: psycopg.Connection, listener: psycopg.Connection
) -> None:
    add_job(conn, add_document(conn), "parsing", "queued")
    send_sentinel(conn)
    assert notifications_until_sentinel(listener) == ["parsing", SENTINEL]


def test_bulk_insert_notifies_once_per_stage(
    conn: psycopg.Connection, listener: psycopg.Connection
) -> None:
    with conn.transaction():
        for _ in range(50):
            document_id = add_document(conn)
            add_job(conn, document_id, "parsing", "queued")
            add_job(conn, document_id, "embedding", "queued")
        send_sentinel(conn)
    assert notifications_until_sentinel(listener) == ["parsing", "embedding", SENTINEL]


def test_claiming_and_finishing_do_not_notify_but_retry_and_advance_do(
    conn: psycopg.Connection, listener: psycopg.Connection
) -> None:
    job_id = add_job(conn, add_document(conn), "parsing", "queued")
    send_sentinel(conn)
    assert notifications_until_sentinel(listener) == ["parsing", SENTINEL]
    for change, notifies in [
        ("state = 'working'", None),  # the claim
        ("state = 'retryable'", "parsing"),  # a retry makes it ready again
        ("state = 'working'", None),
        ("stage = 'parsed', state = 'queued'", "parsed"),  # moved on to the next stage
        ("payload = '{\"a\": 1}'", None),  # unrelated updates stay quiet
        ("state = 'working'", None),
        ("state = 'done'", None),
    ]:
        conn.execute(
            f"UPDATE upload_pipeline.upload_jobs SET {change} WHERE job_id = %s", (job_id,)
        )
        send_sentinel(conn)
        expected = [SENTINEL] if notifies is None else [notifies, SENTINEL]
        assert notifications_until_sentinel(listener) == expected, change


def test_updated_at_moves_on_update_unless_set_explicitly(conn: psycopg.Connection) -> None:
    job_id = add_job(conn, add_document(conn))
    old = "2000-01-01T00:00:00Z"
    conn.execute(
        "UPDATE upload_pipeline.upload_jobs SET updated_at = %s, created_at = %s WHERE job_id = %s",
        (old, old, job_id),
    )
    kept = conn.execute(
        "SELECT updated_at = %s::timestamptz FROM upload_pipeline.upload_jobs WHERE job_id = %s",
        (old, job_id),
    ).fetchone()
    assert kept == (True,)
    conn.execute(
        "UPDATE upload_pipeline.upload_jobs SET state = 'working' WHERE job_id = %s", (job_id,)
    )
    moved = conn.execute(
        "SELECT updated_at > created_at FROM upload_pipeline.upload_jobs WHERE job_id = %s",
        (job_id,),
    ).fetchone()
    assert moved == (True,)


def test_deleting_a_document_removes_its_jobs(conn: psycopg.Connection) -> None:
    document_id = add_document(conn)
    add_job(conn, document_id, "parsing")
    add_job(conn, document_id, "chunking")
    conn.execute("DELETE FROM upload_pipeline.documents WHERE document_id = %s", (document_id,))
    row = conn.execute("SELECT count(*) FROM upload_pipeline.upload_jobs").fetchone()
    assert row == (0,)


def test_job_defaults(conn: psycopg.Connection) -> None:
    job_id = add_job(conn, add_document(conn))
    row = conn.execute(
        "SELECT retry_count, payload, run_id, last_error FROM upload_pipeline.upload_jobs"
        " WHERE job_id = %s",
        (job_id,),
    ).fetchone()
    assert row == (0, {}, None, None)


def test_ready_and_backlog_queries_use_the_partial_indexes(conn: psycopg.Connection) -> None:
    # Disabling sequential scans makes the planner reveal whether a matching index exists.
    conn.execute("SET enable_seqscan = off")
    ready = conn.execute(
        "EXPLAIN SELECT job_id FROM upload_pipeline.upload_jobs"
        " WHERE stage = 'parsing' AND state IN ('queued', 'retryable')"
        " ORDER BY created_at LIMIT 10 FOR UPDATE SKIP LOCKED"
    ).fetchall()
    assert "upload_jobs_ready" in "\n".join(line for (line,) in ready)
    backlog = conn.execute(
        "EXPLAIN SELECT stage, state, count(*) FROM upload_pipeline.upload_jobs"
        " WHERE state IN ('queued', 'working', 'retryable') GROUP BY stage, state"
    ).fetchall()
    plan = "\n".join(line for (line,) in backlog)
    # Any partial index over active rows will do (later migrations may add covering ones).
    assert "Index Only Scan" in plan or "Index Scan" in plan, plan
    assert "Seq Scan" not in plan, plan


@pytest.mark.parametrize(
    ("constraint", "allowed"),
    [
        ("upload_jobs_stage_check", pipeline.STAGES),
        ("upload_jobs_state_check", pipeline.STATES),
        ("events_event_type_check", pipeline.EVENT_TYPES),
    ],
)
def test_check_constraints_match_the_pipeline_model(
    conn: psycopg.Connection, constraint: str, allowed: tuple[str, ...]
) -> None:
    row = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s", (constraint,)
    ).fetchone()
    assert row is not None
    assert sorted(re.findall(r"'(\w+)'", row[0])) == sorted(allowed)
