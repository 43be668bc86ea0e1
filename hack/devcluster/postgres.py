"""Throw-away and persistent local PostgreSQL servers built from the machine's binaries.

Called by the pytest fixtures (tests/fixtures/database.py) for per-session and
per-test servers, and by `python -m devcluster db-up` / `db-down` through
`db_up` and `db_down` for the developer's persistent server under `.local/`.
PostgreSQL refuses to run as root, so when we are root every server command runs
as the `postgres` user through `runuser` and the data directory is chowned to it.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from devcluster.pghost import (
    PostgresError,
    clone_data_dir,
    find_binaries,
    free_port,
    port_in_use,
)

__all__ = [
    "PostgresError",
    "PostgresServer",
    "clone_data_dir",
    "db_down",
    "db_up",
    "free_port",
]

RUN_AS_USER = "postgres"
DEV_DATABASE = "uploads"
# Throw-away servers trade durability for speed; the persistent dev server keeps fsync.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
START_TIMEOUT_SECONDS = 60
PORT_ATTEMPTS = 3
SOCKET_PATH_LIMIT = 100  # sun_path holds 108 bytes; PostgreSQL refuses longer socket paths


class PostgresServer:
    """One PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port` only.

    start() runs initdb the first time, then pg_ctl start; stop() and start()
    again reuse the same port and data, which is what outage tests rely on.
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, fast: bool = True) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.fast = fast
        self.binaries = find_binaries()
        self._as_root = os.geteuid() == 0
        # A port the caller chose is kept; one we chose may move if someone took it meanwhile.
        self._port_pinned = port is not None
        self.port = port if port is not None else self._configured_port() or free_port()

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """Initialise the data directory if needed and start the server; waits until it accepts."""
        if self.is_running():
            return
        self.init()
        for attempt in range(PORT_ATTEMPTS):
            # Another process may take a port between free_port() and the bind: pick again.
            if not self._port_pinned and (attempt > 0 or port_in_use(self.port)):
                self.port = free_port()
            self._write_settings()
            try:
                self._pg_ctl_start()
                break
            except PostgresError as error:
                lost_port = "Address already in use" in str(error)
                if self._port_pinned or not lost_port or attempt == PORT_ATTEMPTS - 1:
                    raise
        self._wait_until_accepting()

    def _pg_ctl_start(self) -> None:
        self._run(
            [
                self.binaries.tool("pg_ctl"),
                "start",
                "--wait",
                f"--timeout={START_TIMEOUT_SECONDS}",
                f"--pgdata={self.data_dir}",
                f"--log={self.log_file}",
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast` rolls back open transactions, `immediate` is a crash)."""
        if not self.is_running():
            return
        self._run(
            [
                self.binaries.tool("pg_ctl"),
                "stop",
                "--wait",
                f"--pgdata={self.data_dir}",
                "-m",
                mode,
            ]
        )

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        status = self._run(
            [self.binaries.tool("pg_ctl"), "status", f"--pgdata={self.data_dir}"], check=False
        )
        return status.returncode == 0

    def create_database(self, name: str, template: str | None = None) -> str:
        """CREATE DATABASE `name` (optionally from `template`) unless it exists; returns its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template is not None:
                    statement = sql.SQL("{} TEMPLATE {}").format(
                        statement, sql.Identifier(template)
                    )
                conn.execute(statement)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def init(self) -> None:
        """Run initdb unless the data directory already holds a cluster (start() calls this)."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if self._as_root:
            user = pwd.getpwnam(RUN_AS_USER)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            reachable = self._run(["test", "-w", str(self.data_dir)], check=False)
            if reachable.returncode != 0:
                raise PostgresError(
                    f"user {RUN_AS_USER!r} cannot reach {self.data_dir}: make its parent "
                    "directories traversable (chmod o+x) or choose a data directory under /tmp"
                )
        self._run(
            [
                self.binaries.tool("initdb"),
                f"--pgdata={self.data_dir}",
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )

    def _write_settings(self) -> None:
        """Our settings go in an included file so initdb's postgresql.conf stays untouched."""
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self._socket_dir()}'",
            "max_connections": "300",
            "log_min_messages": "warning",
        }
        if self._has_library("pg_stat_statements"):
            settings["shared_preload_libraries"] = "'pg_stat_statements'"
        if self.fast:
            settings.update(FAST_SETTINGS)
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        self._write_owned(self.data_dir / "backlog.conf", text)
        main_conf = self.data_dir / "postgresql.conf"
        include = "include_if_exists = 'backlog.conf'\n"
        if include not in main_conf.read_text():
            with main_conf.open("a") as handle:
                handle.write(include)

    def _socket_dir(self) -> str:
        """The data dir, or none at all when its socket path would pass the kernel's limit.

        Clients here use TCP; the socket is a convenience for psql.
        """
        socket_path = self.data_dir / f".s.PGSQL.{self.port}"
        return str(self.data_dir) if len(str(socket_path)) < SOCKET_PATH_LIMIT else ""

    def _configured_port(self) -> int | None:
        """The port of an existing data directory, so a restart keeps its address."""
        conf = self.data_dir / "backlog.conf"
        if not conf.exists():
            return None
        for line in conf.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "port":
                return int(value.strip())
        return None

    def _has_library(self, name: str) -> bool:
        result = subprocess.run(
            [self.binaries.tool("pg_config"), "--pkglibdir"], capture_output=True, text=True
        )
        return result.returncode == 0 and (Path(result.stdout.strip()) / f"{name}.so").exists()

    def _write_owned(self, path: Path, text: str) -> None:
        path.write_text(text)
        if self._as_root:
            user = pwd.getpwnam(RUN_AS_USER)
            os.chown(path, user.pw_uid, user.pw_gid)

    def _wait_until_accepting(self) -> None:
        # pg_ctl --wait already waited for "ready"; this also proves TCP on our port works.
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._as_root:
            argv = ["runuser", "-u", RUN_AS_USER, "--", *argv]
        # cwd=/ because the postgres user may not be allowed into our working directory.
        result = subprocess.run(argv, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            log_tail = self._log_tail()
            raise PostgresError(
                f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}{log_tail}"
            )
        return result

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            return ""
        return "\n--- " + str(self.log_file) + " ---\n" + "\n".join(lines)


def db_up(state_dir: Path) -> str:
    """Start (or reuse) the persistent dev server under state_dir/postgres; returns its DSN.

    The DSN points at a migrated `uploads` database and is also written to state_dir/dsn.
    """
    # Imported here so devcluster's cluster commands work without the operator package.
    from backlog_operator.db import migrate

    server = PostgresServer(Path(state_dir) / "postgres", fast=False)
    server.start()
    dsn = server.create_database(DEV_DATABASE)
    migrate.apply(dsn)
    (Path(state_dir) / "dsn").write_text(dsn + "\n")
    return dsn


def db_down(state_dir: Path) -> None:
    """Stop the dev server started by db_up (its data stays for the next db_up)."""
    data_dir = Path(state_dir) / "postgres"
    if (data_dir / "PG_VERSION").exists():
        PostgresServer(data_dir).stop()
