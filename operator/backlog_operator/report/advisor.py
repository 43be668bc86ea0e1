"""Index advisor: EXPLAIN the claim and backlog queries and propose the missing indexes.

For each of the worker's claim (worker/queries.sql) and the operator's backlog
query (sources/queries.sql), `advise(conn, schema)` reads the plan twice: as
the planner chooses, and with sequential scans discouraged. A sequential scan of
upload_jobs that survives the second EXPLAIN means no index can serve the
query; the advisor then proposes the query's partial index (from the shipped
migrations, as doctor prints it) as a CREATE INDEX statement. Nothing is
executed: EXPLAIN without ANALYZE, inside a transaction that is rolled back.
Called by report/cli.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from backlog_operator import pipeline
from backlog_operator.db import queries
from backlog_operator.report import doctor_db
from backlog_operator.sources import queries as source_queries

# Which shipped partial indexes serve which query.
SERVES = {
    "claim": ("upload_jobs_ready",),
    "backlog": ("upload_jobs_active", "upload_jobs_queued_since", "upload_jobs_retry_due"),
}
_STAGES = ["parsing", "chunking", "embedding"]


@dataclass(frozen=True)
class Finding:
    query: str  # claim | backlog
    chosen: tuple[str, ...]  # access paths on upload_jobs as planned
    forced: tuple[str, ...]  # ... with enable_seqscan = off
    missing: tuple[str, ...]  # expected indexes absent from the catalog
    statements: tuple[str, ...]  # CREATE INDEX proposals

    @property
    def needs_index(self) -> bool:
        return any(p.startswith("Seq Scan") for p in self.forced) or bool(self.missing)


def _statement(name: str, schema: str) -> sql.Composed:
    if name == "claim":
        return queries.in_schema("backlog_operator.worker", "queries.sql", "claim", schema)
    return source_queries.stage_signals(schema, pipeline.DEFAULT_TABLE)


_PARAMS: Mapping[str, Mapping[str, Any]] = {
    "claim": {"stages": _STAGES, "limit": 10, "worker": "advisor", "lease_seconds": 30},
    "backlog": {"stages": _STAGES, "window_s": 60},
}


def _nodes(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def access_paths(plan_json: Any, table: str = "upload_jobs") -> tuple[str, ...]:
    """`Seq Scan`, `Index Scan using X`, ... for every plan node reading `table`."""
    root = plan_json[0]["Plan"] if isinstance(plan_json, list) else plan_json["Plan"]
    out = []
    for node in _nodes(root):
        if node.get("Relation Name") != table:
            continue
        kind = str(node.get("Node Type"))
        index = node.get("Index Name")
        if kind == "Bitmap Heap Scan":  # the index sits in its Bitmap Index Scan children
            names = [n["Index Name"] for n in _nodes(node) if n.get("Index Name")]
            index = ", ".join(dict.fromkeys(names)) or None
        out.append(f"{kind} using {index}" if index else kind)
    return tuple(dict.fromkeys(out))  # unique, in plan order


def _explain(conn: psycopg.Connection, name: str, schema: str) -> tuple[str, ...]:
    statement = sql.SQL("EXPLAIN (FORMAT JSON) ") + _statement(name, schema)
    row = conn.execute(statement, dict(_PARAMS[name])).fetchone()
    plan = row[0] if row else []
    return access_paths(json.loads(plan) if isinstance(plan, str) else plan)


def advise(conn: psycopg.Connection, schema: str = pipeline.DEFAULT_SCHEMA) -> tuple[Finding, ...]:
    expected = doctor_db.expected_partial_indexes(schema)
    present = {
        row[0]
        for row in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'upload_jobs'",
            (schema,),
        )
    }
    findings = []
    for name in ("claim", "backlog"):
        with conn.transaction(force_rollback=True):
            chosen = _explain(conn, name, schema)
            conn.execute("SET LOCAL enable_seqscan = off")
            forced = _explain(conn, name, schema)
        missing = tuple(i for i in SERVES[name] if i in expected and i not in present)
        unserved = any(p.startswith("Seq Scan") for p in forced)
        proposals = [expected[i].statement for i in missing]
        if unserved and not proposals:
            # Present but unusable (e.g. a changed predicate): propose the shipped definition.
            proposals = [expected[i].statement for i in SERVES[name] if i in expected][:1]
        findings.append(Finding(name, chosen, forced, missing, tuple(proposals)))
    return tuple(findings)
