"""Unit: /healthz turns false when the worker failed or its event loop stopped turning."""

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
