"""The machine side of local PostgreSQL: its binaries, free loopback ports, data-dir copies.

Used by devcluster.postgres (PostgresServer, db_up) and, through it, the pytest
fixtures in tests/fixtures/database.py. Binaries come from $BACKLOG_PG_BINDIR,
then `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

BINDIR_ENV = "BACKLOG_PG_BINDIR"


class PostgresError(RuntimeError):
    """A server command failed; the message carries the command's output."""


@dataclass(frozen=True)
class Binaries:
    """Where initdb, pg_ctl and friends live."""

    bindir: Path

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


def find_binaries() -> Binaries:
    """$BACKLOG_PG_BINDIR, then `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin."""
    candidates: list[str] = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(os.environ[BINDIR_ENV])
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if result.returncode == 0:
            candidates.append(result.stdout.strip())
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(versions)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Binaries(Path(candidate))
    raise PostgresError(
        f"PostgreSQL binaries not found (looked in {candidates or 'nothing'}); set {BINDIR_ENV}"
    )


def _version_key(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0


def port_in_use(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def clone_data_dir(source: Path, target: Path) -> None:
    """Copy a stopped, initialised data directory (cheaper than another initdb).

    `cp -a` keeps the postgres user's ownership and the 0700 mode PostgreSQL insists on.
    """
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    for stale in ("postmaster.pid", "backlog.conf", "postgres.log"):
        (target / stale).unlink(missing_ok=True)


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
