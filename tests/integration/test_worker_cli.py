"""Integration: the `backlog-operator worker` command's bad-input errors and its HTTP
endpoints (/metrics, /healthz, /readyz), against a real PostgreSQL.
"""

import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from devcluster.postgres import PostgresServer, free_port
from tests.integration import test_worker_support as support

pytestmark = pytest.mark.integration


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [support.CLI, "worker", "--metrics-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert needle in errors[0]


def test_unreachable_database_is_a_one_line_error() -> None:
    result = _run("--dsn", f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    _one_line_error(result, "database error: connection failed")


def test_unknown_stage_is_a_one_line_error(migrated_dsn: str) -> None:
    result = _run("--dsn", migrated_dsn, "--stages", "parsing,transmogrifying")
    _one_line_error(result, "unknown stage 'transmogrifying'")


def test_missing_schema_is_a_one_line_error(pg_server: PostgresServer) -> None:
    name = "worker_no_schema"
    pg_server.drop_database(name)
    dsn = pg_server.create_database(name)
    try:
        result = _run("--dsn", dsn, "--stages", "all")
    finally:
        pg_server.drop_database(name)
    _one_line_error(result, "schema 'upload_pipeline' has no upload_jobs/events tables")


def test_dsn_from_environment_and_http_endpoints(migrated_dsn: str, tmp_path: Path) -> None:
    support.seed(migrated_dsn, 10)
    port = free_port()
    proc = support.spawn(
        migrated_dsn,
        "http-worker",
        tmp_path,
        "--metrics-port",
        str(port),
        "--service-time-scale",
        "0",
    )  # --dsn comes from $BACKLOG_DSN (support.spawn)
    try:
        support.wait_ready(proc)
        support.wait_until(lambda: support.unfinished(migrated_dsn) == 0, 60, "jobs done")
        base = f"http://127.0.0.1:{port}"
        assert urllib.request.urlopen(f"{base}/healthz").status == 200
        assert urllib.request.urlopen(f"{base}/readyz").status == 200
        text = urllib.request.urlopen(f"{base}/metrics").read().decode()
    finally:
        codes = support.terminate({"w": proc})
    assert codes == {"w": 0}
    assert 'backlog_worker_jobs_total{outcome="done",stage="embedded"} 10.0' in text
    assert 'backlog_worker_jobs_total{outcome="advanced",stage="queued"} 10.0' in text
    for family in (
        "backlog_worker_processing_seconds_bucket",
        "backlog_worker_in_flight",
        "backlog_worker_claim_batch_size_bucket",
        "backlog_worker_claim_seconds_bucket",
    ):
        assert family in text


def test_taken_metrics_port_is_a_warning_not_a_failure(migrated_dsn: str, tmp_path: Path) -> None:
    support.seed(migrated_dsn, 5)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = support.spawn(
            migrated_dsn,
            "no-http",
            tmp_path,
            "--metrics-port",
            str(port),
            "--service-time-scale",
            "0",
        )
        try:
            support.wait_until(lambda: support.unfinished(migrated_dsn) == 0, 60, "jobs done")
        finally:
            codes = support.terminate({"w": proc})
    assert codes == {"w": 0}
    assert '"metrics server disabled"' in support.log_of(proc)
