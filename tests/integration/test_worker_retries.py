"""Integration: handler failures through an in-process BaseWorker subclass on a real
PostgreSQL: retry with backoff, deadletter after max_retries, sync and async handlers.
"""

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace

import pytest

from backlog_operator.worker.base import BaseWorker, Job
from backlog_operator.worker.settings import WorkerSettings
from tests.integration import test_worker_support as support

pytestmark = pytest.mark.integration

FAST = WorkerSettings(
    stages=("queued",),
    concurrency=4,
    batch_size=4,
    max_retries=2,
    backoff_base_seconds=0.02,
    backoff_cap_seconds=0.05,
    poll_interval_seconds=0.05,
    service_time_scale=0.0,
    metrics_port=0,
    worker_name="in-process",
    seed=1,
)


class AlwaysFails(BaseWorker):
    async def handle_queued(self, job: Job) -> None:
        raise ValueError(f"cannot validate (attempt {job.attempt})")


class FailsOnce(BaseWorker):
    """Async handler for queued, a sync one (run in a thread) for parsing; each fails once."""

    async def handle_queued(self, job: Job) -> None:
        if job.attempt == 1:
            raise RuntimeError("flaky validation")

    def handle_parsing(self, job: Job) -> None:
        assert threading.current_thread() is not threading.main_thread()
        if job.attempt == 1:
            raise RuntimeError("flaky parser")


def run_until(worker: BaseWorker, done: Callable[[], bool], timeout: float = 60) -> None:
    """Run `worker` in this thread's event loop until `done()` (checked off-loop), then drain."""

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(timeout):
                while not await asyncio.to_thread(done):
                    if task.done():
                        break
                    await asyncio.sleep(0.05)
        finally:
            worker.stop()
            await task

    asyncio.run(main())


def _event_counts(dsn: str) -> dict[str, int]:
    return dict(
        support.rows(dsn, "SELECT event_type, count(*) FROM upload_pipeline.events GROUP BY 1")
    )


def test_failing_handler_retries_then_deadletters(migrated_dsn: str) -> None:
    support.seed(migrated_dsn, 1)
    worker = AlwaysFails(migrated_dsn, FAST)
    run_until(worker, lambda: support.unfinished(migrated_dsn) == 0 or _dead(migrated_dsn))
    (row,) = support.rows(
        migrated_dsn,
        "SELECT stage, state, retry_count, last_error, finished_at IS NOT NULL, claimed_by "
        "FROM upload_pipeline.upload_jobs",
    )
    stage, state, retries, error, finished, claimed_by = row
    assert (stage, state, retries, finished, claimed_by) == ("queued", "deadletter", 3, True, None)
    assert error["type"] == "ValueError"
    assert error["message"] == "cannot validate (attempt 3)"
    assert (error["stage"], error["attempt"], error["worker"]) == ("queued", 3, "in-process")
    counts = _event_counts(migrated_dsn)
    assert counts == {"stage_started": 3, "retry": 2, "error": 1, "finalized": 1}
    sample = worker.metrics.registry.get_sample_value
    labels = {"stage": "queued"}
    assert sample("backlog_worker_jobs_total", {**labels, "outcome": "retry"}) == 2
    assert sample("backlog_worker_jobs_total", {**labels, "outcome": "deadletter"}) == 1


def _dead(dsn: str) -> bool:
    return bool(
        support.scalar(
            dsn, "SELECT count(*) FROM upload_pipeline.upload_jobs WHERE state = 'deadletter'"
        )
    )


def test_retry_is_not_claimed_before_retry_at(migrated_dsn: str) -> None:
    support.seed(migrated_dsn, 1)
    patient = replace(FAST, backoff_base_seconds=3600, backoff_cap_seconds=3600)
    worker = AlwaysFails(migrated_dsn, patient)
    seen: list[int] = []

    def one_retry_then_some_polls() -> bool:
        seen.append(_event_counts(migrated_dsn).get("retry", 0))
        return seen[-1] >= 1 and len(seen) > 20  # keep polling ~1 s after the failure

    run_until(worker, one_retry_then_some_polls)
    (row,) = support.rows(
        migrated_dsn,
        "SELECT state, retry_count, retry_at > now() + interval '1700 seconds' "
        "FROM upload_pipeline.upload_jobs",
    )
    assert row == ("retryable", 1, True)
    assert _event_counts(migrated_dsn) == {"stage_started": 1, "retry": 1}


def test_jobs_that_fail_once_still_finish_every_stage(migrated_dsn: str) -> None:
    support.seed(migrated_dsn, 3)
    settings = replace(FAST, stages=WorkerSettings().stages)
    worker = FailsOnce(migrated_dsn, settings)
    run_until(worker, lambda: support.unfinished(migrated_dsn) == 0)
    support.assert_every_stage_done_once(migrated_dsn, 3)
    retries = support.rows(
        migrated_dsn,
        "SELECT stage, count(*) FROM upload_pipeline.events WHERE event_type = 'retry' "
        "GROUP BY 1 ORDER BY 1",
    )
    assert retries == [("parsing", 3), ("queued", 3)]
    assert (
        support.scalar(migrated_dsn, "SELECT max(retry_count) FROM upload_pipeline.upload_jobs")
        == 0
    )  # the retry budget is per stage
