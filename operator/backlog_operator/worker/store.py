"""The worker's database calls: claim, complete, heartbeat, reap, release.

Each method runs one named query from worker/queries.sql (loaded once,
`{schema}` composed with psycopg.sql.Identifier) on a connection the caller
owns. Called by worker/base.py and directly by the integration tests.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from backlog_operator.db import queries

_SQL = queries.load("backlog_operator.worker", "queries.sql")


class SchemaMissingError(RuntimeError):
    """The pipeline tables are not in the database (migrations not applied?)."""


@dataclass(frozen=True)
class Claim:
    """A claimed job as the claim query returned it; `token` (claimed_at) fences its completion."""

    job_id: UUID
    document_id: UUID
    stage: str
    retry_count: int
    payload: Mapping[str, Any]
    token: datetime


@dataclass(frozen=True)
class Completion:
    """How one claim ends: the state it moves to, and what the events row records."""

    claim: Claim
    next_stage: str
    next_state: str  # queued | done | retryable | deadletter
    retry_count: int
    delay_seconds: float | None = None  # retryable only: retry_at = now() + delay
    error: Mapping[str, Any] | None = None
    seconds: float | None = None  # handler time, for the events row


@dataclass(frozen=True)
class Reaped:
    """A job whose expired lease the reaper took back."""

    job_id: UUID
    stage: str
    state: str


AsyncConn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class JobStore:
    """The queries of one schema, run on behalf of worker `worker`."""

    schema: str
    worker: str

    def _query(self, name: str) -> sql.Composed:
        return sql.SQL(_SQL[name]).format(schema=sql.Identifier(self.schema))

    async def check_schema(self, conn: AsyncConn) -> None:
        cursor = await conn.execute(_SQL["check_schema"], {"schema": self.schema})
        row = await cursor.fetchone()
        if not row or not row[0]:
            raise SchemaMissingError(
                f"schema {self.schema!r} has no upload_jobs/events tables; "
                "run `backlog-operator db migrate` first"
            )

    async def claim(
        self, conn: AsyncConn, stages: Sequence[str], limit: int, lease_seconds: float
    ) -> list[Claim]:
        params = {
            "stages": list(stages),
            "limit": limit,
            "worker": self.worker,
            "lease_seconds": float(lease_seconds),
        }
        cursor = await conn.execute(self._query("claim"), params)
        return [Claim(*row) for row in await cursor.fetchall()]

    async def complete(self, conn: AsyncConn, completions: Sequence[Completion]) -> set[UUID]:
        """Write a batch of completions; returns the job ids the fence let through."""
        if not completions:
            return set()
        params = {
            "worker": self.worker,
            "job_ids": [c.claim.job_id for c in completions],
            "tokens": [c.claim.token for c in completions],
            "stages": [c.claim.stage for c in completions],
            "next_stages": [c.next_stage for c in completions],
            "next_states": [c.next_state for c in completions],
            "retry_counts": [c.retry_count for c in completions],
            "delays": [c.delay_seconds for c in completions],
            "errors": [None if c.error is None else json.dumps(c.error) for c in completions],
            "seconds": [c.seconds for c in completions],
        }
        cursor = await conn.execute(self._query("complete"), params)
        return {row[0] for row in await cursor.fetchall()}

    async def heartbeat(
        self, conn: AsyncConn, claims: Sequence[Claim], lease_seconds: float
    ) -> set[UUID]:
        """Extend the leases of `claims` still held; returns the job ids extended."""
        if not claims:
            return set()
        cursor = await conn.execute(self._query("heartbeat"), self._held(claims, lease_seconds))
        return {row[0] for row in await cursor.fetchall()}

    async def release(self, conn: AsyncConn, claims: Sequence[Claim]) -> set[UUID]:
        """Return unfinished claims to `queued` at once; returns the job ids released."""
        if not claims:
            return set()
        cursor = await conn.execute(self._query("release"), self._held(claims, 0.0))
        return {row[0] for row in await cursor.fetchall()}

    async def reap(self, conn: AsyncConn, max_retries: int, limit: int) -> list[Reaped]:
        """Expired leases -> retryable (deadletter past max_retries); safe from many workers."""
        params = {"worker": self.worker, "max_retries": max_retries, "limit": limit}
        cursor = await conn.execute(self._query("reap"), params)
        return [Reaped(*row) for row in await cursor.fetchall()]

    def _held(self, claims: Sequence[Claim], lease_seconds: float) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "job_ids": [c.job_id for c in claims],
            "tokens": [c.token for c in claims],
            "lease_seconds": float(lease_seconds),
        }
