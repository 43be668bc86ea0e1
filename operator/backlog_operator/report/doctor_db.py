"""The doctor's database checks: reachable, schema current, partial indexes, leases, deadletters.

`run(dsn, schema, lease_grace_seconds)` returns a list of checks.Check; a
database that cannot be reached skips the rest. The partial indexes expected
are read from the shipped migrations (CREATE INDEX ... WHERE, minus those a
later migration drops), so the fix printed is the migration's own statement.
Called by report/doctor.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg

from backlog_operator import pipeline
from backlog_operator.db import migrate, queries
from backlog_operator.db.cli import one_line
from backlog_operator.report import checks

query = functools.partial(queries.in_schema, "backlog_operator.report", "doctor.sql")

_CREATE = re.compile(
    r"CREATE\s+(UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s+ON\s+(\w+)\.(\w+)(.*?);",
    re.IGNORECASE | re.DOTALL,
)
_DROP = re.compile(r"DROP\s+INDEX\s+(?:IF\s+EXISTS\s+)?(?:\w+\.)?(\w+)", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")


@dataclass(frozen=True)
class IndexSpec:
    name: str
    statement: str  # CREATE INDEX CONCURRENTLY ..., ready to paste


def expected_partial_indexes(schema: str = pipeline.DEFAULT_SCHEMA) -> Mapping[str, IndexSpec]:
    """Partial indexes on upload_jobs that the shipped migrations leave in place."""
    found: dict[str, IndexSpec] = {}
    for migration in migrate.available():
        text = _COMMENT.sub("", migration.sql)
        for match in _DROP.finditer(text):
            found.pop(match.group(1), None)
        for match in _CREATE.finditer(text):
            unique, name, _schema, table_name, rest = match.groups()
            if table_name != "upload_jobs" or not re.search(r"\bWHERE\b", rest, re.IGNORECASE):
                continue
            body = " ".join(rest.split())
            statement = (
                f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY {name} "
                f"ON {schema}.upload_jobs {body};"
            )
            found[name] = IndexSpec(name, statement)
    return found


def run(dsn: str | None, schema: str, lease_grace_seconds: float) -> list[checks.Check]:
    if not dsn:
        return [
            checks.fail(
                "database reachable",
                "no DSN given",
                "pass --dsn or set BACKLOG_DSN (the DSN your workers use)",
            )
        ]
    try:
        conn = migrate.connect(dsn)
    except psycopg.Error as error:
        return [
            checks.fail(
                "database reachable",
                one_line(error),
                "check the DSN, that the server runs and accepts connections from here",
            )
        ]
    with conn:
        conn.execute("SET statement_timeout = 10000")
        version, database, host, port = conn.execute(query("server", schema)).fetchone() or (
            "?",
            "?",
            "?",
            "?",
        )
        found = [
            checks.ok("database reachable", f"PostgreSQL {version}, {database} at {host}:{port}")
        ]
        schema_check = _schema(conn)
        found.append(schema_check)
        if schema_check.failed and migrate.current_version(conn) is None:
            return found  # nothing else can be there
        found.append(_indexes(conn, schema))
        found.append(_expired_leases(conn, schema, lease_grace_seconds))
        found.append(_deadletters(conn, schema))
    return found


def _schema(conn: psycopg.Connection) -> checks.Check:
    name = "schema version current"
    latest = migrate.latest_version()
    try:
        waiting = migrate.pending(conn)
        current = migrate.current_version(conn)
    except psycopg.Error as error:
        return checks.fail(name, one_line(error), "backlog-operator db migrate --dsn DSN")
    if current is None:
        return checks.fail(name, "never migrated", "backlog-operator db migrate --dsn DSN")
    if waiting:
        names = ", ".join(m.name for m in waiting)
        return checks.fail(
            name,
            f"at {current:04d}, latest {latest:04d}; pending: {names}",
            "backlog-operator db migrate --dsn DSN",
        )
    return checks.ok(name, f"{current:04d} (latest shipped {latest:04d})")


def _indexes(conn: psycopg.Connection, schema: str) -> checks.Check:
    name = "partial indexes present"
    rows = conn.execute(query("indexes", schema), {"schema_name": schema}).fetchall()
    present = {index: (valid, partial) for index, valid, partial in rows}
    expected = expected_partial_indexes(schema)
    missing = [spec for index, spec in expected.items() if index not in present]
    invalid = [
        spec for index, spec in expected.items() if index in present and not present[index][0]
    ]
    if not missing and not invalid:
        return checks.ok(name, ", ".join(sorted(expected)))
    problems = [f"missing {s.name}" for s in missing] + [f"invalid {s.name}" for s in invalid]
    fixes = [f"DROP INDEX CONCURRENTLY {schema}.{s.name};" for s in invalid]
    fixes += [s.statement for s in (*missing, *invalid)]
    return checks.fail(name, "; ".join(problems), "\n".join(fixes))


def _expired_leases(conn: psycopg.Connection, schema: str, grace: float) -> checks.Check:
    name = "no expired leases"
    rows = conn.execute(query("expired_leases", schema), {"grace_s": grace}).fetchall()
    if not rows:
        return checks.ok(name, f"no working job past its lease by more than {grace:g}s")
    total = sum(int(n) for _, n, _ in rows)
    oldest = max(float(s) for _, _, s in rows)
    stages = ", ".join(f"{stage}: {n}" for stage, n, _ in rows)
    return checks.fail(
        name,
        f"{total} jobs held by dead workers ({stages}); oldest expired {oldest:.0f}s ago",
        "start a worker for those stages (each worker's reaper returns expired claims),\n"
        "or: backlog-operator worker --stages STAGES --dsn DSN",
    )


def _deadletters(conn: psycopg.Connection, schema: str) -> checks.Check:
    name = "no deadletters in the last hour"
    rows = conn.execute(query("deadletters_last_hour", schema)).fetchall()
    if not rows:
        return checks.ok(name)
    total = sum(int(n) for _, n, _ in rows)
    stages = ", ".join(f"{stage}: {n}" for stage, n, _ in rows)
    commonest = rows[0][2] or "no error recorded"
    return checks.warn(
        name,
        f"{total} jobs deadlettered ({stages}); e.g. {commonest}",
        f"inspect them: SELECT job_id, stage, last_error FROM {schema}.upload_jobs "
        "WHERE state = 'deadletter' ORDER BY finished_at DESC LIMIT 20;",
    )
