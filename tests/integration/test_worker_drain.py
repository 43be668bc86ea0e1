"""Integration: the SIGTERM contract of a real worker process.

Stop claiming, let in-flight work finish within the grace period, hand back what
did not finish so it is ready again at once, exit 0.
"""

import signal
from pathlib import Path

import pytest

from tests.integration import test_worker_support as support

pytestmark = pytest.mark.integration

SLOW = {"workload": {"serviceTime": {"default": {"meanSeconds": 600, "distribution": "Constant"}}}}
QUICK = {"workload": {"serviceTime": {"default": {"meanSeconds": 1.0, "distribution": "Constant"}}}}


def _working(dsn: str, worker: str) -> int:
    return int(
        support.scalar(
            dsn,
            "SELECT count(*) FROM upload_pipeline.upload_jobs "
            "WHERE state = 'working' AND claimed_by = %(w)s",
            {"w": worker},
        )
    )


def test_sigterm_releases_unfinished_claims_and_exits_zero(
    migrated_dsn: str, tmp_path: Path
) -> None:
    support.seed(migrated_dsn, 20, payload=SLOW)
    proc = support.spawn(
        migrated_dsn,
        "drainer",
        tmp_path,
        "--concurrency",
        "8",
        "--batch-size",
        "8",
        "--grace-seconds",
        "1",
        "--lease-seconds",
        "300",
    )
    try:
        support.wait_ready(proc)
        support.wait_until(lambda: _working(migrated_dsn, "drainer") == 8, 30, "8 claims")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)  # grace is 1 s; a hang fails here
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, support.log_of(proc)
    # Ready again at once: queued, unclaimed, no lease to wait out, no retry counted.
    states = support.rows(
        migrated_dsn,
        "SELECT stage, state, count(*), count(claimed_by), count(lease_expires_at), "
        "max(retry_count) FROM upload_pipeline.upload_jobs GROUP BY 1, 2",
    )
    assert states == [("queued", "queued", 20, 0, 0, 0)]
    assert '"released": 8' in support.log_of(proc)


def test_sigterm_lets_in_flight_work_finish_within_grace(migrated_dsn: str, tmp_path: Path) -> None:
    support.seed(migrated_dsn, 40, payload=QUICK)
    proc = support.spawn(
        migrated_dsn,
        "finisher",
        tmp_path,
        "--stages",
        "queued",
        "--concurrency",
        "8",
        "--batch-size",
        "8",
        "--grace-seconds",
        "60",
    )
    try:
        support.wait_ready(proc)
        support.wait_until(lambda: _working(migrated_dsn, "finisher") > 0, 30, "claims")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, support.log_of(proc)
    counts = dict(
        support.rows(
            migrated_dsn,
            "SELECT event_type, count(*) FROM upload_pipeline.events GROUP BY 1",
        )
    )
    # Every claim it started, it finished (and it claimed nothing after SIGTERM).
    assert counts["stage_started"] == counts["stage_done"]
    assert 0 < counts["stage_done"] < 40
    assert _working(migrated_dsn, "finisher") == 0
    advanced = support.scalar(
        migrated_dsn,
        "SELECT count(*) FROM upload_pipeline.upload_jobs WHERE stage = 'job_validated'",
    )
    assert advanced == counts["stage_done"]
