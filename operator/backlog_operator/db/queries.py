"""Load named SQL queries from .sql files shipped inside the package.

A file holds several queries, each under a `-- name: query_name` header (the
procrastinate habit). Any module with SQL calls `load("backlog_operator.db",
"migrate.sql")` once at import time and looks queries up by name;
`in_schema(package, filename, name, schema)` also composes the query's `{schema}`
as a quoted identifier (report, scaletest, worker).
"""

import functools
import importlib.resources
import re
from collections.abc import Mapping
from types import MappingProxyType

from psycopg import sql

from backlog_operator import pipeline

_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@functools.cache
def load(package: str, filename: str) -> Mapping[str, str]:
    """{query name: SQL text} for every `-- name:` section of `package`/`filename`."""
    text = importlib.resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    return MappingProxyType(parse(text))


@functools.cache
def in_schema(
    package: str, filename: str, name: str, schema: str = pipeline.DEFAULT_SCHEMA
) -> sql.Composed:
    """The query `name` of `package`/`filename`, `{schema}` replaced by the quoted identifier."""
    return sql.SQL(load(package, filename)[name]).format(schema=sql.Identifier(schema))


def parse(text: str) -> dict[str, str]:
    """Split `text` at `-- name:` headers; text before the first header is ignored."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip()
    return queries
