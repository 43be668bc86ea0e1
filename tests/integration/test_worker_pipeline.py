"""Integration: documents through all 11 stages with 4 real worker processes, calmly and
while processes are SIGKILLed and restarted. Real PostgreSQL (tests/fixtures/database.py).
"""

import random
import signal
import time
from pathlib import Path

import pytest

from tests.integration import test_worker_support as support

pytestmark = pytest.mark.integration

DOCUMENTS = 2000
NAMES = ["worker-a", "worker-b", "worker-c", "worker-d"]
MAX_KILLS = 8


def test_four_workers_move_every_document_through_every_stage_once(
    migrated_dsn: str, tmp_path: Path
) -> None:
    support.seed(migrated_dsn, DOCUMENTS)
    options = ["--stages", "all", "--service-time-scale", "0"]
    options += ["--concurrency", "64", "--batch-size", "32"]
    with support.workers(migrated_dsn, NAMES, tmp_path, *options) as procs:
        support.wait_until(
            lambda: support.unfinished(migrated_dsn) == 0, timeout=150, what="all jobs done"
        )
        codes = support.terminate(procs)
    assert codes == dict.fromkeys(NAMES, 0)
    support.assert_every_stage_done_once(migrated_dsn, DOCUMENTS)
    busy = support.rows(
        migrated_dsn,
        "SELECT DISTINCT worker FROM upload_pipeline.events WHERE event_type = 'stage_done'",
    )
    assert len(busy) >= 2  # the work was shared, not done by one process
    retries = support.scalar(
        migrated_dsn,
        "SELECT count(*) FROM upload_pipeline.events WHERE event_type <> ALL("
        "ARRAY['stage_started', 'stage_done', 'finalized'])",
    )
    assert retries == 0


def test_sigkilled_workers_lose_nothing_and_complete_nothing_twice(
    migrated_dsn: str, tmp_path: Path
) -> None:
    support.seed(
        migrated_dsn,
        DOCUMENTS,
        payload={"workload": {"serviceTime": {"default": {"meanSeconds": 0.004}}}},
    )
    # Short leases so the jobs of killed workers come back within the test.
    options = ["--stages", "all", "--concurrency", "32", "--batch-size", "16"]
    options += ["--lease-seconds", "1.5", "--reap-interval", "0.3", "--max-retries", "1000"]
    options += ["--poll-interval", "0.2"]
    rng = random.Random(4)
    kills = 0
    last_kill = time.monotonic()
    with support.workers(migrated_dsn, NAMES, tmp_path, *options) as procs:

        def chaos_round() -> bool:
            nonlocal kills, last_kill
            if support.unfinished(migrated_dsn) == 0:
                return True
            # A kill every ~1.5 s, at most MAX_KILLS: restarts are slow on a busy machine.
            if kills < MAX_KILLS and time.monotonic() - last_kill > rng.uniform(1.0, 2.0):
                last_kill = time.monotonic()
                name = rng.choice(NAMES)
                procs[name].send_signal(signal.SIGKILL)
                procs[name].wait()
                kills += 1
                # Half come back under the same name (a container restart): only the claim
                # token then tells the old claim from the new one.
                new_name = name if rng.random() < 0.5 else f"{name}-r{kills}"
                procs[name] = support.spawn(migrated_dsn, new_name, tmp_path, *options)
            return False

        support.wait_until(chaos_round, timeout=150, what="all jobs done despite kills")
        codes = support.terminate(procs)
    assert set(codes.values()) == {0}
    assert kills > 0
    support.assert_every_stage_done_once(migrated_dsn, DOCUMENTS)
    reaped = support.scalar(
        migrated_dsn,
        "SELECT count(*) FROM upload_pipeline.events "
        "WHERE event_type = 'retry' AND detail -> 'error' ->> 'type' = 'LeaseExpired'",
    )
    assert reaped > 0  # the kills did catch claimed work, which came back through the reaper
