"""The worker's database calls: claim, complete, heartbeat, reap, release.

Each method runs one named query from worker/queries.sql (loaded once,
`{schema}` composed with psycopg.sql.Identifier) on a connection the caller
owns. Called by worker/base.py and directly by the integration tests.
"""

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg import sql

from backlog_operator.db import queries

_SQL = queries.load("backlog_operator.worker", "queries.sql")


class SchemaMissingError(RuntimeError):
    """The pipeline tables are not in the database (migrations not applied?)."""


@functools.lru_cache(maxsize=1024)
def decode_payload(text: str) -> Mapping[str, Any]:
    """A payload's JSON, decoded once per distinct text (a run's jobs share their workload)."""
    value = json.loads(text)
    return MappingProxyType(value if isinstance(value, dict) else {"value": value})


@dataclass(frozen=True)
class Claim:
    """A claimed job as the claim query returned it; `token` (claimed_at) fences its completion.

    Ids and token stay text: they only travel back to PostgreSQL, joined into one string.
    """

    job_id: str
    document_id: str
    stage: str
    retry_count: int
    payload_text: str
    token: str

    @property
    def payload(self) -> Mapping[str, Any]:
        return decode_payload(self.payload_text)


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

    job_id: str
    stage: str
    state: str


AsyncConn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class JobStore:
    """The queries of one schema, run on behalf of worker `worker`."""

    schema: str
    worker: str

    def _query(self, name: str) -> sql.Composed:
        return queries.in_schema("backlog_operator.worker", "queries.sql", name, self.schema)

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

    async def complete(self, conn: AsyncConn, completions: Sequence[Completion]) -> set[str]:
        """Write a batch of completions; returns the job ids the fence let through."""
        if not completions:
            return set()
        errors = {c.claim.job_id: c.error for c in completions if c.error is not None}
        params = {
            "worker": self.worker,
            "job_ids": ",".join([c.claim.job_id for c in completions]),
            "tokens": ",".join([c.claim.token for c in completions]),
            "stages": ",".join([c.claim.stage for c in completions]),
            "next_stages": ",".join([c.next_stage for c in completions]),
            "next_states": ",".join([c.next_state for c in completions]),
            "retry_counts": ",".join([str(c.retry_count) for c in completions]),
            "delays": ",".join([_number(c.delay_seconds) for c in completions]),
            "seconds": ",".join([_number(c.seconds) for c in completions]),
            "errors": json.dumps(errors),
        }
        cursor = await conn.execute(self._query("complete"), params)
        return {row[0] for row in await cursor.fetchall()}

    async def heartbeat(
        self, conn: AsyncConn, claims: Sequence[Claim], lease_seconds: float
    ) -> set[str]:
        """Extend the leases of `claims` still held; returns the job ids extended."""
        if not claims:
            return set()
        cursor = await conn.execute(self._query("heartbeat"), self._held(claims, lease_seconds))
        return {row[0] for row in await cursor.fetchall()}

    async def release(self, conn: AsyncConn, claims: Sequence[Claim]) -> set[str]:
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
            "job_ids": ",".join([c.job_id for c in claims]),
            "tokens": ",".join([c.token for c in claims]),
            "lease_seconds": float(lease_seconds),
        }


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))
