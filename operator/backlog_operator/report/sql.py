"""The report package's named queries, with the pipeline schema composed as an identifier.

`query(name, schema)` returns the named section of stats.sql, doctor.sql or
report.sql with `{schema}` replaced by the quoted identifier. Called by stats.py,
doctor checks, the run loader and the index advisor.
"""

from __future__ import annotations

import functools

from psycopg import sql

from backlog_operator.db import queries

_FILES = ("stats.sql", "doctor.sql", "report.sql")


@functools.cache
def _all() -> dict[str, str]:
    merged: dict[str, str] = {}
    for filename in _FILES:
        for name, text in queries.load("backlog_operator.report", filename).items():
            if name in merged:
                raise ValueError(f"query {name!r} is defined in two files")
            merged[name] = text
    return merged


@functools.cache
def query(name: str, schema: str = "upload_pipeline") -> sql.Composed:
    """The query `name`, `{schema}` replaced by the quoted identifier `schema`."""
    return sql.SQL(_all()[name]).format(schema=sql.Identifier(schema))
