"""Migrations and `backlog-operator db ...` on real PostgreSQL: idempotent, concurrent, clear."""

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from backlog_operator.db import migrate, queries
from devcluster.postgres import PostgresServer, free_port
from tests.fixtures.database import schema_dump

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "backlog-operator")
EXPECTED_INDEXES = {
    "upload_pipeline.upload_jobs_one_active_per_stage",
    "upload_pipeline.upload_jobs_ready",
    "upload_pipeline.upload_jobs_active",
    "upload_pipeline.upload_jobs_working_claimed_by",
    "upload_pipeline.events_created_at",
    "upload_pipeline.events_job_id",
}
EXPECTED_TRIGGERS = {
    "upload_jobs_touch_updated_at",
    "upload_jobs_notify_ready_insert",
    "upload_jobs_notify_ready_update",
    "documents_touch_updated_at",
}


@pytest.fixture
def empty_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """A brand-new database with nothing migrated."""
    name = f"empty_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.create_database(name)
    yield dsn
    pg_server.drop_database(name)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)


def test_second_apply_changes_nothing(empty_dsn: str) -> None:
    first = migrate.apply(empty_dsn)
    assert first == [migration.name for migration in migrate.available()]
    with psycopg.connect(empty_dsn) as conn:
        before = schema_dump(conn)
    assert migrate.apply(empty_dsn) == []
    with psycopg.connect(empty_dsn) as conn:
        after = schema_dump(conn)
        history = conn.execute("SELECT count(*) FROM backlog_operator.schema_migrations")
        assert history.fetchone() == (len(first),)
    assert before == after


def test_schema_has_the_designed_indexes_and_triggers(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn) as conn:
        dump = schema_dump(conn)
    assert {name for name, _ in dump.indexes} >= EXPECTED_INDEXES
    assert {name for _, name, _ in dump.triggers} >= EXPECTED_TRIGGERS
    tables = {table for table, *_ in dump.columns}
    assert {"upload_pipeline.documents", "upload_pipeline.upload_jobs"} <= tables
    assert "upload_pipeline.events" in tables


def test_versions_before_and_after(empty_dsn: str) -> None:
    with migrate.connect(empty_dsn) as conn:
        assert migrate.current_version(conn) is None
        assert [m.name for m in migrate.pending(conn)] == [m.name for m in migrate.available()]
        migrate.apply_on(conn)
        assert migrate.current_version(conn) == migrate.latest_version()
        assert migrate.pending(conn) == []


def test_two_concurrent_cli_runs_both_succeed(pg_server: PostgresServer, empty_dsn: str) -> None:
    runs = [
        subprocess.Popen([CLI, "db", "migrate", "--dsn", empty_dsn], stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    # Same schema as the fixtures' template, and every migration recorded exactly once.
    with (
        psycopg.connect(empty_dsn) as conn,
        psycopg.connect(pg_server.dsn("backlog_template")) as ref,
    ):
        assert schema_dump(conn) == schema_dump(ref)
        versions = conn.execute("SELECT version FROM backlog_operator.schema_migrations").fetchall()
    assert sorted(version for (version,) in versions) == [m.version for m in migrate.available()]


def test_cli_migrate_and_version_report_progress(empty_dsn: str) -> None:
    before = run_cli("db", "version", "--dsn", empty_dsn)
    assert before.returncode == 0, before.stderr
    assert "database: not migrated" in before.stdout
    assert f"pending:  {migrate.available()[0].name}" in before.stdout
    first = run_cli("db", "migrate", "--dsn", empty_dsn)
    assert first.returncode == 0, first.stderr
    assert f"applied {migrate.available()[0].name}" in first.stdout
    second = run_cli("db", "migrate", "--dsn", empty_dsn)
    assert second.returncode == 0 and "applied" not in second.stdout
    after = run_cli("db", "version", "--dsn", empty_dsn)
    assert f"database: {migrate.latest_version()}" in after.stdout
    assert "pending" not in after.stdout


def test_cli_reads_the_dsn_from_the_environment(empty_dsn: str) -> None:
    result = subprocess.run(
        [CLI, "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "BACKLOG_DSN": empty_dsn},
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_dsn) as conn:
        assert migrate.current_version(conn) == migrate.latest_version()


@pytest.mark.parametrize(
    "dsn_kind", ["server_down", "not_a_dsn", "unknown_database", "unknown_host"]
)
def test_bad_dsn_is_one_line_and_exit_1(pg_server: PostgresServer, dsn_kind: str) -> None:
    dsn = {
        "server_down": f"postgresql://postgres@127.0.0.1:{free_port()}/uploads",
        "not_a_dsn": "this is not a dsn",
        "unknown_database": pg_server.dsn("no_such_database"),
        "unknown_host": "postgresql://postgres@host.invalid/uploads",
    }[dsn_kind]
    for command in ("migrate", "version"):
        result = run_cli("db", command, "--dsn", dsn)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("Error: database error:")


def test_an_edited_applied_migration_is_refused(empty_dsn: str) -> None:
    migrate.apply(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("UPDATE backlog_operator.schema_migrations SET checksum = 'edited'")
    with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
        migrate.apply(empty_dsn)
    result = run_cli("db", "migrate", "--dsn", empty_dsn)
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_migrations_are_numbered_files_in_order() -> None:
    found = migrate.available()
    assert [m.version for m in found] == sorted({m.version for m in found})
    assert found[0].name == "0001_upload_pipeline"


def test_named_queries_parse_and_refuse_duplicates() -> None:
    parsed = queries.parse("-- preamble\n-- name: a\nSELECT 1;\n-- name: b\nSELECT 2;\n")
    assert parsed == {"a": "SELECT 1;", "b": "SELECT 2;"}
    with pytest.raises(ValueError, match="twice"):
        queries.parse("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_a_second_migrator_waits_for_the_lock_holder(empty_dsn: str) -> None:
    waiting = threading.Event()
    result: list[list[str]] = []
    with psycopg.connect(empty_dsn, autocommit=True) as holder:
        # Hold the runner's own lock, as a concurrent migrator would.
        holder.execute(queries.load("backlog_operator.db", "migrate.sql")["lock"])
        worker = threading.Thread(
            target=lambda: result.append(migrate.apply(empty_dsn, on_wait=waiting.set))
        )
        worker.start()
        assert waiting.wait(timeout=60), "apply() never reported that it waits"
        assert result == []  # still blocked while we hold the lock
    worker.join(timeout=120)
    assert result == [[m.name for m in migrate.available()]]


def test_a_file_numbered_below_the_applied_maximum_still_runs(empty_dsn: str) -> None:
    def make(version: int, table: str) -> migrate.Migration:
        sql = f"CREATE TABLE public.{table} (id int);"
        return migrate.Migration(version, f"{version:04d}_{table}", sql)

    first, late, last = make(1, "first"), make(5, "late"), make(9, "last")
    with migrate.connect(empty_dsn) as conn:
        assert migrate.apply_on(conn, migrations=[first, last]) == ["0001_first", "0009_last"]
        assert migrate.apply_on(conn, migrations=[first, late, last]) == ["0005_late"]
        assert migrate.apply_on(conn, migrations=[first, late, last]) == []
        assert conn.execute("SELECT to_regclass('public.late') IS NOT NULL").fetchone() == (True,)


def test_a_failing_migration_leaves_no_trace(empty_dsn: str) -> None:
    good = migrate.Migration(1, "0001_good", "CREATE TABLE public.good (id int);")
    bad = migrate.Migration(
        2, "0002_bad", "CREATE TABLE public.half (id int); SELECT * FROM no_such_table;"
    )
    with migrate.connect(empty_dsn) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            migrate.apply_on(conn, migrations=[good, bad])
        # 0001 committed; 0002 rolled back as a whole, with no history row.
        assert [m.name for m in migrate.applied(conn)] == ["0001_good"]
        assert conn.execute("SELECT to_regclass('public.half')").fetchone() == (None,)
        # The lock was released although this session lives on: another one takes it at once.
        with psycopg.connect(empty_dsn, autocommit=True) as other:
            lock = queries.load("backlog_operator.db", "migrate.sql")["try_lock"]
            assert other.execute(lock).fetchone() == (True,)


def test_an_empty_dsn_is_a_usage_error() -> None:
    result = run_cli("db", "migrate", "--dsn", " ")
    assert result.returncode == 2
    assert "Invalid value for '--dsn': is empty" in result.stderr
    assert "Traceback" not in result.stderr
