"""`backlog-operator db ...`: migrate the pipeline schema and show its version.

Loaded lazily by backlog_operator.cli. Every failure to reach or migrate the
database becomes a one-line click error with exit code 1, never a traceback.
"""

import click
import psycopg

from backlog_operator.db import migrate

DSN_ENVVARS = ["BACKLOG_DSN", "DATABASE_URL"]


def _non_blank(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # libpq reads an empty DSN as "the local default socket", which is never what was meant.
    if not value.strip():
        raise click.BadParameter("is empty")
    return value


dsn_option = click.option(
    "--dsn",
    envvar=DSN_ENVVARS,
    required=True,
    callback=_non_blank,
    help="PostgreSQL connection string (or env BACKLOG_DSN / DATABASE_URL).",
)


@click.group()
def db() -> None:
    """Database schema: migrations and version."""


@db.command("migrate")
@dsn_option
def migrate_command(dsn: str) -> None:
    """Apply pending migrations (idempotent; safe to run from several processes at once)."""
    try:
        names = migrate.apply(dsn, on_wait=_say_waiting)
    except (psycopg.Error, migrate.MigrationError) as error:
        raise click.ClickException(one_line(error)) from None
    for name in names:
        click.echo(f"applied {name}")
    click.echo(f"schema at version {migrate.latest_version()}")


def _say_waiting() -> None:
    click.echo("another process is migrating this database; waiting for it", err=True)


@db.command("version")
@dsn_option
def version_command(dsn: str) -> None:
    """Print the database's schema version and the latest one this build ships."""
    try:
        with migrate.connect(dsn) as conn:
            current = migrate.current_version(conn)
            waiting = migrate.pending(conn)
    except psycopg.Error as error:
        raise click.ClickException(one_line(error)) from None
    click.echo(f"database: {current if current is not None else 'not migrated'}")
    click.echo(f"latest:   {migrate.latest_version()}")
    for migration in waiting:
        click.echo(f"pending:  {migration.name}")


def one_line(error: Exception) -> str:
    """psycopg messages span lines (hints, server addresses); keep the first meaningful ones."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = "; ".join(lines[:2]) if lines else type(error).__name__
    return f"database error: {text}"
