"""Apply the versioned .sql migrations in db/migrations/ to a database.

Called by `backlog-operator db migrate` (db/cli.py), the pytest fixtures, the dev
server's `db_up`, and `doctor` (through current_version / latest_version).
Each file `NNNN_name.sql` runs once, in version order, inside its own
transaction together with its row in backlog_operator.schema_migrations. A
session advisory lock serialises concurrent runners, so two processes migrating
the same database both succeed and the second finds nothing left to do.
"""

import functools
import hashlib
import importlib.resources
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from backlog_operator.db import queries

_QUERIES = queries.load("backlog_operator.db", "migrate.sql")
_FILENAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
CONNECT_TIMEOUT_SECONDS = 10


class MigrationError(RuntimeError):
    """The database's migration history disagrees with the migrations shipped here."""


@dataclass(frozen=True)
class Migration:
    """One migration file: `version` comes from its NNNN prefix, `name` is the file stem."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class AppliedMigration:
    """A row of backlog_operator.schema_migrations."""

    version: int
    name: str
    checksum: str


@functools.cache
def available() -> tuple[Migration, ...]:
    """Every migration shipped in the package, in version order."""
    found: list[Migration] = []
    directory = importlib.resources.files("backlog_operator.db").joinpath("migrations")
    for entry in directory.iterdir():
        match = _FILENAME.match(entry.name)
        if match is None:
            continue
        sql_text = entry.read_text(encoding="utf-8")
        found.append(Migration(int(match.group(1)), entry.name.removesuffix(".sql"), sql_text))
    found.sort(key=_version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {sorted(versions)}")
    return tuple(found)


def _version(migration: Migration) -> int:
    return migration.version


def latest_version() -> int:
    """The highest version shipped with this build of the package."""
    return available()[-1].version


def current_version(conn: psycopg.Connection) -> int | None:
    """The highest version applied to the database behind `conn`, None when never migrated.

    Versions may have gaps (0020 before 0003 exists); use pending() to know what is missing.
    """
    row = conn.execute(_QUERIES["history_exists"]).fetchone()
    if row is None or not row[0]:
        return None
    version_row = conn.execute(_QUERIES["current_version"]).fetchone()
    return None if version_row is None else version_row[0]


def applied(conn: psycopg.Connection) -> list[AppliedMigration]:
    """The database's migration history (empty when never migrated)."""
    row = conn.execute(_QUERIES["history_exists"]).fetchone()
    if row is None or not row[0]:
        return []
    return [AppliedMigration(*record) for record in conn.execute(_QUERIES["applied"])]


def pending(conn: psycopg.Connection) -> list[Migration]:
    """Migrations shipped here that the database has not applied yet."""
    done = {migration.version for migration in applied(conn)}
    return [migration for migration in available() if migration.version not in done]


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection with a bounded connect time (a dead server fails fast)."""
    return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)


def apply(dsn: str, on_wait: Callable[[], None] | None = None) -> list[str]:
    """Bring the database at `dsn` to the latest version; returns the names applied now.

    `on_wait` is called once if another process is migrating and we must wait for it.
    """
    with connect(dsn) as conn:
        return apply_on(conn, on_wait)


def apply_on(
    conn: psycopg.Connection,
    on_wait: Callable[[], None] | None = None,
    migrations: Sequence[Migration] | None = None,
) -> list[str]:
    """Same as apply() on an open autocommit connection.

    `migrations` defaults to the shipped ones; tests pass their own.
    """
    shipped = available() if migrations is None else sorted(migrations, key=_version)
    locked = conn.execute(_QUERIES["try_lock"]).fetchone()
    if locked is None or not locked[0]:
        if on_wait is not None:
            on_wait()
        conn.execute(_QUERIES["lock"])
    try:
        conn.execute(_QUERIES["create_history"])
        history = applied(conn)
        _check_history(history, shipped)
        done = {migration.version for migration in history}
        names: list[str] = []
        # Every missing version runs, even one below the highest applied (files added out of
        # order on separate branches), so `pending()` rather than a maximum says what is left.
        for migration in shipped:
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.sql)
                conn.execute(
                    _QUERIES["record"], (migration.version, migration.name, migration.checksum)
                )
            names.append(migration.name)
        return names
    finally:
        if not conn.broken:
            conn.execute(_QUERIES["unlock"])


def _check_history(history: Sequence[AppliedMigration], shipped: Sequence[Migration]) -> None:
    """Applied files must be unchanged: editing a released migration silently forks schemas."""
    by_version = {migration.version: migration for migration in shipped}
    for record in history:
        migration = by_version.get(record.version)
        # A newer database than this build (rollback of the operator) is fine: skip it.
        if migration is not None and migration.checksum != record.checksum:
            raise MigrationError(
                f"migration {migration.name} was changed after it was applied "
                f"(checksum {record.checksum[:12]} in the database, "
                f"{migration.checksum[:12]} here); "
                "add a new migration file instead of editing an applied one"
            )
