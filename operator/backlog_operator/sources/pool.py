"""One small psycopg connection pool per distinct DSN, shared by every user of that database.

KEDA's PostgreSQL scaler opens one connection per ScaledObject (kedacore/keda#6955);
here 200 BacklogScalers on one database share one pool of `max_size` connections.
Every connection carries `statement_timeout` (set at connect time through the
`options` startup parameter, so no query can run without it) and autocommit.

Called by hub.py (one pool per SignalHub) and by anyone else needing the same
database briefly (e.g. the drain-aware scale-in reading claims) via `PoolRegistry`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backlog_operator.sources import dsn as dsnlib


@dataclass(frozen=True)
class PoolSettings:
    """How each per-DSN pool is sized and bounded."""

    min_size: int = 1
    max_size: int = 2
    statement_timeout_ms: int = 2000
    connect_timeout_s: int = 3
    # How long a caller waits for a free connection (or a reconnect) before failing.
    checkout_timeout_s: float = 3.0
    # psycopg_pool doubles its reconnect delay without bound; giving up after this long
    # resets it, and the next checkout starts a fresh attempt (1 s, 2 s, 4 s...).
    reconnect_timeout_s: float = 10.0
    application_name: str = "backlog-operator"

    def connection_kwargs(self) -> dict[str, Any]:
        """libpq/psycopg connection arguments applied to every pooled connection."""
        return {
            "autocommit": True,
            "connect_timeout": self.connect_timeout_s,
            "application_name": self.application_name,
            # A monitoring query must stay light on the user's database: no parallel
            # workers (their start-up alone costs more than the index-only scan).
            "options": (
                f"-c statement_timeout={self.statement_timeout_ms}"
                " -c max_parallel_workers_per_gather=0"
            ),
        }


def open_pool(dsn: str, settings: PoolSettings) -> AsyncConnectionPool:
    """A started pool; it connects in the background, so a down server does not block."""
    pool = AsyncConnectionPool(
        dsn,
        min_size=settings.min_size,
        max_size=settings.max_size,
        kwargs=settings.connection_kwargs(),
        timeout=settings.checkout_timeout_s,
        # The pool name shows up in psycopg's own log lines: never the DSN.
        name=dsnlib.dsn_id(dsn),
        open=False,
        # Drop a connection the server killed before handing it out again.
        check=AsyncConnectionPool.check_connection,
        reconnect_timeout=settings.reconnect_timeout_s,
    )
    return pool


@dataclass
class _Entry:
    pool: AsyncConnectionPool
    users: int = 0


@dataclass
class PoolRegistry:
    """Pools keyed by DSN, reference-counted: `acquire` opens or shares, `release` closes."""

    settings: PoolSettings = field(default_factory=PoolSettings)
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def acquire(self, dsn: str) -> AsyncConnectionPool:
        """The shared pool for `dsn` (opened on first use); pair with `release`."""
        async with self._lock:
            entry = self._entries.get(dsn)
            if entry is None:
                pool = open_pool(dsn, self.settings)
                await pool.open(wait=False)
                entry = self._entries[dsn] = _Entry(pool)
            entry.users += 1
            return entry.pool

    async def release(self, dsn: str) -> None:
        """Drop one user of `dsn`'s pool; the last one closes it."""
        async with self._lock:
            entry = self._entries.get(dsn)
            if entry is None:
                return
            entry.users -= 1
            if entry.users > 0:
                return
            del self._entries[dsn]
        await entry.pool.close()

    def pool_count(self) -> int:
        """How many distinct databases have an open pool (for metrics and tests)."""
        return len(self._entries)

    async def close(self) -> None:
        """Close every pool (operator shutdown)."""
        async with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            await entry.pool.close()
