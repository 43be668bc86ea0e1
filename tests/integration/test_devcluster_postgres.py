"""devcluster.postgres: throw-away servers restart in place, and db_up/db_down are idempotent."""

import shutil
import socket
import tempfile
from pathlib import Path

import psycopg
import pytest

from backlog_operator.db import migrate
from devcluster import postgres
from devcluster.postgres import PostgresServer

pytestmark = pytest.mark.integration


def test_restart_keeps_port_and_data(
    private_pg_server: PostgresServer, private_migrated_dsn: str
) -> None:
    with psycopg.connect(private_migrated_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO upload_pipeline.documents (filename) VALUES ('kept.pdf')")
    port = private_pg_server.port
    private_pg_server.stop()
    assert not private_pg_server.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(private_migrated_dsn, connect_timeout=5)
    private_pg_server.start()
    assert private_pg_server.is_running()
    assert private_pg_server.port == port
    with psycopg.connect(private_migrated_dsn) as conn:
        row = conn.execute("SELECT filename FROM upload_pipeline.documents").fetchone()
    assert row == ("kept.pdf",)


def test_server_settings(pg_server: PostgresServer) -> None:
    with psycopg.connect(pg_server.dsn()) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()
            for name in ("listen_addresses", "max_connections", "server_encoding", "fsync")
        }
    assert settings == {
        "listen_addresses": ("127.0.0.1",),
        "max_connections": ("300",),
        "server_encoding": ("UTF8",),
        "fsync": ("off",),
    }


def test_unix_socket_lives_in_the_data_dir(pg_server: PostgresServer) -> None:
    sockets = list(pg_server.data_dir.glob(".s.PGSQL.*"))
    assert [s.name for s in sockets if not s.name.endswith(".lock")] == [
        f".s.PGSQL.{pg_server.port}"
    ]


def test_db_up_is_idempotent_and_db_down_stops() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="backlog-dbup-"))
    state_dir.chmod(0o711)
    try:
        dsn = postgres.db_up(state_dir)
        assert (state_dir / "dsn").read_text().strip() == dsn
        assert postgres.db_up(state_dir) == dsn  # reuses the running server
        with psycopg.connect(dsn) as conn:
            assert migrate.current_version(conn) == migrate.latest_version()
        postgres.db_down(state_dir)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=5)
        postgres.db_down(state_dir)  # stopping a stopped server is fine
        assert postgres.db_up(state_dir) == dsn  # same port and data after a restart
    finally:
        postgres.db_down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def test_a_data_dir_too_deep_for_a_unix_socket_still_serves_tcp(_pristine_data_dir: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="backlog-pg-deep-"))
    root.chmod(0o711)
    deep = root / ("d" * 60) / ("e" * 30)
    deep.parent.mkdir()
    deep.parent.chmod(0o711)
    postgres.clone_data_dir(_pristine_data_dir, deep)
    server = PostgresServer(deep)
    try:
        server.start()
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SHOW unix_socket_directories").fetchone() == ("",)
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


def test_a_taken_port_is_replaced_unless_pinned(_pristine_data_dir: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="backlog-pg-port-"))
    root.chmod(0o711)
    postgres.clone_data_dir(_pristine_data_dir, root / "data")
    # Bound but not listening: a connect probe sees nothing, yet PostgreSQL cannot bind it,
    # which is what losing a race for a free port looks like.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        taken = blocker.getsockname()[1]
        pinned = PostgresServer(root / "data", port=taken)
        floating: PostgresServer | None = None
        try:
            with pytest.raises(postgres.PostgresError, match="Address already in use"):
                pinned.start()
            floating = PostgresServer(root / "data")  # remembers `taken` from the attempt
            assert floating.port == taken
            floating.start()
            assert floating.port != taken
            with psycopg.connect(floating.dsn(), connect_timeout=10):
                pass
        finally:
            if floating is not None:
                floating.stop(mode="immediate")
            shutil.rmtree(root, ignore_errors=True)
