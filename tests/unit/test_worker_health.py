"""Unit: BaseWorker without a database: /healthz (failure, loop stalls) and when the
built-in simulation may take its planned fast path."""

import time

from backlog_operator.worker.base import BaseWorker
from backlog_operator.worker.settings import WorkerSettings


def test_health_follows_failure_and_loop_stalls() -> None:
    worker = BaseWorker("postgresql://unused", WorkerSettings(metrics_port=0))
    assert worker.healthy
    assert not worker.ready  # ready only once run() has checked the schema
    worker._tick = time.monotonic() - 120  # the upkeep loop last turned two minutes ago
    assert not worker.healthy
    worker._tick = time.monotonic()
    worker.failed = True
    assert not worker.healthy


def test_subclass_that_replaces_simulate_is_not_bypassed() -> None:
    class Custom(BaseWorker):
        async def simulate(self, job: object) -> None:  # type: ignore[override]
            pass

    settings = WorkerSettings(metrics_port=0)
    assert BaseWorker("postgresql://unused", settings)._builtin_simulation
    assert not Custom("postgresql://unused", settings)._builtin_simulation
