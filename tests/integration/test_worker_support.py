"""Helpers for the worker integration tests (no tests here): seed jobs, run the real
`backlog-operator worker` CLI as subprocesses, poll the database, check invariants.

Imported by tests/integration/test_worker_*.py.
"""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

CLI = str(Path(sys.executable).with_name("backlog-operator"))


def seed(dsn: str, documents: int, payload: dict[str, Any] | None = None) -> None:
    """`documents` documents, each with one job at stage `queued`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            WITH docs AS (
                INSERT INTO upload_pipeline.documents (filename)
                SELECT 'doc-' || g FROM generate_series(1, %(n)s) AS g
                RETURNING document_id
            )
            INSERT INTO upload_pipeline.upload_jobs (document_id, payload)
            SELECT document_id, %(payload)s::jsonb FROM docs
            """,
            {"n": documents, "payload": json.dumps(payload or {})},
        )


def scalar(dsn: str, query: str, params: dict[str, Any] | None = None) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params or {}).fetchone()
        return row[0] if row else None


def rows(dsn: str, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params or {}).fetchall()


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, every: float = 0.1
) -> None:
    """Poll `condition` until true; fail the test with `what` if `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


_LOGS: dict[int, Path] = {}  # pid -> that process's log file
_SPAWNED = itertools.count()


def spawn(dsn: str, name: str, log_dir: Path, *options: str) -> subprocess.Popen[bytes]:
    """One real worker process (`backlog-operator worker`), logging to log_dir/name.N.log."""
    env = {**os.environ, "BACKLOG_DSN": dsn, "POD_NAME": name}
    path = log_dir / f"{name}.{next(_SPAWNED)}.log"
    with path.open("ab") as log:
        proc = subprocess.Popen(
            [CLI, "worker", "--metrics-port", "0", *options], env=env, stdout=log, stderr=log
        )
    _LOGS[proc.pid] = path
    return proc


def log_of(proc: subprocess.Popen[bytes]) -> str:
    return _LOGS[proc.pid].read_text(errors="replace")


def wait_ready(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the worker logged "worker ready" (its signal handlers are installed by then)."""
    wait_until(
        lambda: '"worker ready"' in log_of(proc) or proc.poll() is not None,
        timeout,
        "worker ready",
    )
    assert proc.poll() is None, log_of(proc)


@contextmanager
def workers(
    dsn: str, names: Sequence[str], log_dir: Path, *options: str
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Worker processes that are SIGKILLed on exit if the test left them running."""
    procs = {name: spawn(dsn, name, log_dir, *options) for name in names}
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


def terminate(procs: dict[str, subprocess.Popen[bytes]], timeout: float = 60) -> dict[str, int]:
    """SIGTERM every worker (once it is ready) and collect the exit codes."""
    for proc in procs.values():
        if proc.poll() is None:
            wait_ready(proc)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    return {name: proc.wait(timeout=timeout) for name, proc in procs.items()}


def unfinished(dsn: str) -> int:
    return int(
        scalar(dsn, "SELECT count(*) FROM upload_pipeline.upload_jobs WHERE state <> 'done'")
    )


def assert_every_stage_done_once(dsn: str, documents: int, stages: int = 11) -> None:
    """Every job done at the last stage, one stage_done per (job, stage), one finalized per job."""
    states = rows(
        dsn, "SELECT stage, state, count(*) FROM upload_pipeline.upload_jobs GROUP BY 1, 2"
    )
    assert states == [("embedded", "done", documents)]
    doubled = rows(
        dsn,
        """
        SELECT job_id, stage, count(*) FROM upload_pipeline.events
        WHERE event_type = 'stage_done' GROUP BY 1, 2 HAVING count(*) <> 1 LIMIT 5
        """,
    )
    assert doubled == []
    per_job = rows(
        dsn,
        """
        SELECT count(DISTINCT stage), count(*) FILTER (WHERE true) FROM upload_pipeline.events
        WHERE event_type = 'stage_done' GROUP BY job_id
        """,
    )
    assert len(per_job) == documents
    assert set(per_job) == {(stages, stages)}
    finalized = scalar(
        dsn, "SELECT count(*) FROM upload_pipeline.events WHERE event_type = 'finalized'"
    )
    assert finalized == documents
