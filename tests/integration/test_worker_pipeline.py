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
        current = {slot: slot for slot in NAMES}  # slot -> name of the process in it now

        def chaos_round() -> bool:
            nonlocal kills, last_kill
            if support.unfinished(migrated_dsn) == 0:
                return True
            # A kill every ~1.5 s, at most MAX_KILLS (restarts are slow on a busy machine),
            # always of a process that holds claims right now.
            if kills >= MAX_KILLS or time.monotonic() - last_kill < rng.uniform(1.0, 2.0):
                return False
            holders = {
                name
                for (name,) in support.rows(
                    migrated_dsn,
                    "SELECT DISTINCT claimed_by FROM upload_pipeline.upload_jobs "
                    "WHERE state = 'working'",
                )
            }
            slots = [s for s in NAMES if current[s] in holders and procs[s].poll() is None]
            if not slots:
                return False
            slot = rng.choice(slots)
            procs[slot].send_signal(signal.SIGKILL)
            procs[slot].wait()
            kills += 1
            last_kill = time.monotonic()
            # Half come back under the same name (a container restart): only the claim
            # token then tells the old claim from the new one.
            current[slot] = slot if rng.random() < 0.5 else f"{slot}-r{kills}"
            procs[slot] = support.spawn(migrated_dsn, current[slot], tmp_path, *options)
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
