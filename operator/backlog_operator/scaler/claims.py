"""In-flight claims per worker pod: who must survive a scale-in.

`claims_by_pod(pools, dsn, schema, table, pods)` borrows the signal hub's pool
for the DSN (no extra connections) and returns {pod name: working jobs}. Called
by scaler.reconcile right before a scale-in with drainAwareScaleIn.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from psycopg import sql

from backlog_operator.db import queries as sqlfiles
from backlog_operator.sources.pool import PoolRegistry

_SQL = sqlfiles.load("backlog_operator.scaler", "claims.sql")
TIMEOUT_S = 5.0


@functools.cache
def claims_statement(schema: str, table: str) -> sql.Composed:
    return sql.SQL(_SQL["claims_by_pod"]).format(
        schema=sql.Identifier(schema), table=sql.Identifier(table)
    )


async def claims_by_pod(
    pools: PoolRegistry, dsn: str, schema: str, table: str, pods: Sequence[str]
) -> dict[str, int]:
    """{pod: in-flight jobs} for `pods` (pods without claims are absent)."""
    if not pods:
        return {}
    pool = await pools.acquire(dsn)
    try:
        async with asyncio.timeout(TIMEOUT_S), pool.connection() as conn:
            cursor = await conn.execute(claims_statement(schema, table), {"pods": list(pods)})
            return {str(name): int(count) for name, count in await cursor.fetchall()}
    finally:
        await pools.release(dsn)
