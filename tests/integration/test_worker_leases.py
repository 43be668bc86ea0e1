"""Integration: leases, the reaper and fencing, driven through worker/store.py on a real
PostgreSQL. Lease expiry is forced by moving lease_expires_at into the past, not by waiting.
"""

import asyncio
from typing import Any

import psycopg
import pytest

from backlog_operator.worker.base import BaseWorker, Job
from backlog_operator.worker.settings import WorkerSettings
from backlog_operator.worker.store import Claim, Completion, JobStore
from tests.integration import test_worker_support as support

pytestmark = pytest.mark.integration


async def _conn(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True)


def _expire(dsn: str) -> None:
    support.scalar(
        dsn,
        "UPDATE upload_pipeline.upload_jobs SET lease_expires_at = now() - interval '1 second' "
        "WHERE state = 'working' RETURNING 1",
    )


def _advance(claim: Claim) -> Completion:
    return Completion(claim, "job_validated", "queued", 0, seconds=0.01)


def _events(dsn: str, kind: str) -> list[tuple[Any, ...]]:
    return support.rows(
        dsn,
        "SELECT worker, stage, detail FROM upload_pipeline.events WHERE event_type = %(k)s",
        {"k": kind},
    )


def test_claims_are_exclusive_and_leased(migrated_dsn: str) -> None:
    support.seed(migrated_dsn, 30)

    async def scenario() -> list[list[Claim]]:
        conns = [await _conn(migrated_dsn) for _ in range(3)]
        stores = [JobStore("upload_pipeline", f"w{i}") for i in range(3)]
        return list(
            await asyncio.gather(
                *(s.claim(c, ["queued"], 20, 60) for s, c in zip(stores, conns, strict=True))
            )
        )

    batches = asyncio.run(scenario())
    ids = [claim.job_id for batch in batches for claim in batch]
    assert len(ids) == len(set(ids)) == 30  # nobody got a job twice; all 30 handed out
    leased = support.rows(
        migrated_dsn,
        "SELECT claimed_by, count(*) FROM upload_pipeline.upload_jobs "
        "WHERE state = 'working' AND lease_expires_at > now() + interval '50 seconds' GROUP BY 1",
    )
    assert sorted(leased) == sorted(
        (f"w{i}", len(batch)) for i, batch in enumerate(batches) if batch
    )
    assert len(_events(migrated_dsn, "stage_started")) == 30


def test_expired_leases_are_reaped_once_by_concurrent_reapers(migrated_dsn: str) -> None:
    support.seed(migrated_dsn, 50)

    async def scenario() -> int:
        conns = [await _conn(migrated_dsn) for _ in range(4)]
        owner = JobStore("upload_pipeline", "owner")
        await owner.claim(conns[0], ["queued"], 50, 60)
        _expire(migrated_dsn)
        reapers = [JobStore("upload_pipeline", f"reaper{i}") for i in range(3)]
        results = await asyncio.gather(
            *(r.reap(c, 5, 500) for r, c in zip(reapers, conns[1:], strict=True))
        )
        return sum(len(r) for r in results)

    assert asyncio.run(scenario()) == 50
    states = support.rows(
        migrated_dsn,
        "SELECT state, retry_count, count(claimed_by), last_error ->> 'type', "
        "last_error ->> 'worker', count(*) FROM upload_pipeline.upload_jobs GROUP BY 1, 2, 4, 5",
    )
    assert states == [("retryable", 1, 0, "LeaseExpired", "owner", 50)]
    assert len(_events(migrated_dsn, "retry")) == 50
    ready = support.scalar(
        migrated_dsn,
        "SELECT count(*) FROM upload_pipeline.upload_jobs "
        "WHERE state = 'retryable' AND retry_at <= now()",
    )
    assert ready == 50  # a reaped job is ready again at once


def test_reaper_deadletters_past_max_retries(migrated_dsn: str) -> None:
    support.seed(migrated_dsn, 1)

    async def scenario() -> None:
        conn = await _conn(migrated_dsn)
        await JobStore("upload_pipeline", "owner").claim(conn, ["queued"], 1, 60)
        await conn.execute("UPDATE upload_pipeline.upload_jobs SET retry_count = 3")
        _expire(migrated_dsn)
        await JobStore("upload_pipeline", "reaper").reap(conn, 3, 10)

    asyncio.run(scenario())
    assert support.rows(
        migrated_dsn,
        "SELECT state, retry_count, finished_at IS NOT NULL FROM upload_pipeline.upload_jobs",
    ) == [("deadletter", 4, True)]
    assert [e[2] for e in _events(migrated_dsn, "finalized")] == [{"state": "deadletter"}]
    assert len(_events(migrated_dsn, "error")) == 1


def test_heartbeat_extends_only_the_holders_live_leases(migrated_dsn: str) -> None:
    support.seed(migrated_dsn, 5)

    async def scenario() -> tuple[set[Any], set[Any]]:
        conn = await _conn(migrated_dsn)
        owner = JobStore("upload_pipeline", "owner")
        claims = await owner.claim(conn, ["queued"], 5, 5)
        stranger = await JobStore("upload_pipeline", "stranger").heartbeat(conn, claims, 500)
        mine = await owner.heartbeat(conn, claims, 500)
        return stranger, mine

    stranger, mine = asyncio.run(scenario())
    assert stranger == set()
    assert len(mine) == 5
    far = support.scalar(
        migrated_dsn,
        "SELECT count(*) FROM upload_pipeline.upload_jobs "
        "WHERE lease_expires_at > now() + interval '400 seconds'",
    )
    assert far == 5


def test_late_completion_of_a_reaped_claim_is_fenced(migrated_dsn: str) -> None:
    support.seed(migrated_dsn, 1)

    async def scenario() -> tuple[set[Any], set[Any]]:
        conn = await _conn(migrated_dsn)
        old = JobStore("upload_pipeline", "old")
        new = JobStore("upload_pipeline", "new")
        (stale,) = await old.claim(conn, ["queued"], 1, 60)
        _expire(migrated_dsn)
        await new.reap(conn, 5, 10)
        (fresh,) = await new.claim(conn, ["queued"], 1, 60)
        late = await old.complete(conn, [_advance(stale)])
        on_time = await new.complete(conn, [_advance(fresh)])
        return late, on_time

    late, on_time = asyncio.run(scenario())
    assert late == set()
    assert len(on_time) == 1
    done = _events(migrated_dsn, "stage_done")
    assert [(worker, stage) for worker, stage, _ in done] == [("new", "queued")]
    assert support.rows(
        migrated_dsn, "SELECT stage, state, claimed_by FROM upload_pipeline.upload_jobs"
    ) == [("job_validated", "queued", None)]


def test_same_worker_name_cannot_complete_its_own_stale_claim(migrated_dsn: str) -> None:
    # A restarted pod keeps its name: the claim token (claimed_at) is what fences.
    support.seed(migrated_dsn, 1)

    async def scenario() -> tuple[set[Any], set[Any], set[Any]]:
        conn = await _conn(migrated_dsn)
        pod = JobStore("upload_pipeline", "pod-0")
        (stale,) = await pod.claim(conn, ["queued"], 1, 60)
        _expire(migrated_dsn)
        await pod.reap(conn, 5, 10)
        (fresh,) = await pod.claim(conn, ["queued"], 1, 60)
        released = await pod.release(conn, [stale])
        late = await pod.complete(conn, [_advance(stale)])
        on_time = await pod.complete(conn, [_advance(fresh)])
        return released, late, on_time

    released, late, on_time = asyncio.run(scenario())
    assert released == set()
    assert late == set()
    assert len(on_time) == 1
    assert len(_events(migrated_dsn, "stage_done")) == 1


class Gated(BaseWorker):
    """Holds every job until the test opens the gate."""

    gate: asyncio.Event

    async def handle_queued(self, job: Job) -> None:
        await self.gate.wait()


def test_running_worker_whose_claim_was_reaped_is_fenced(migrated_dsn: str) -> None:
    support.seed(migrated_dsn, 1)
    # One slot, busy with the gated job, and no reaper of its own: the job can only be
    # reaped and re-claimed by the thief below.
    settings = WorkerSettings(
        stages=("queued",),
        concurrency=1,
        batch_size=1,
        lease_seconds=600,
        reap_interval_seconds=3600,
        metrics_port=0,
        worker_name="slow",
        listen=False,
    )
    worker = Gated(migrated_dsn, settings)

    def working() -> bool:
        return bool(
            support.scalar(
                migrated_dsn,
                "SELECT count(*) FROM upload_pipeline.upload_jobs WHERE state = 'working'",
            )
        )

    async def scenario() -> float | None:
        worker.gate = asyncio.Event()
        task = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(60):
                while not await asyncio.to_thread(working):
                    await asyncio.sleep(0.05)
                # The lease runs out while the handler is still busy; someone else takes over.
                await asyncio.to_thread(_expire, migrated_dsn)
                conn = await _conn(migrated_dsn)
                thief = JobStore("upload_pipeline", "thief")
                await thief.reap(conn, 5, 10)
                (claim,) = await thief.claim(conn, ["queued"], 1, 60)
                assert await thief.complete(conn, [_advance(claim)]) == {claim.job_id}
                worker.gate.set()
                sample = worker.metrics.registry.get_sample_value
                labels = {"stage": "queued", "outcome": "fenced"}
                while not sample("backlog_worker_jobs_total", labels):
                    await asyncio.sleep(0.05)
                return sample(
                    "backlog_worker_jobs_total", {"stage": "queued", "outcome": "advanced"}
                )
        finally:
            worker.stop()
            await task

    assert asyncio.run(scenario()) is None  # the slow worker's late completion counted nowhere
    done = _events(migrated_dsn, "stage_done")
    assert [(w, stage) for w, stage, _ in done] == [("thief", "queued")]
    assert support.rows(
        migrated_dsn, "SELECT stage, state, retry_count FROM upload_pipeline.upload_jobs"
    ) == [("job_validated", "queued", 0)]
