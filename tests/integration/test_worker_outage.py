"""Integration: a real worker process rides out a PostgreSQL restart.

The server is stopped under it mid-run and started again: the worker reconnects,
the claims it held come back through lease expiry, and every stage is still
completed exactly once.
"""

from pathlib import Path

import pytest

from devcluster.postgres import PostgresServer
from tests.integration import test_worker_support as support

pytestmark = pytest.mark.integration

DOCUMENTS = 300
SLOWISH = {"workload": {"serviceTime": {"default": {"meanSeconds": 0.01}}}}


def test_worker_reconnects_after_a_database_restart(
    private_pg_server: PostgresServer, private_migrated_dsn: str, tmp_path: Path
) -> None:
    dsn = private_migrated_dsn
    support.seed(dsn, DOCUMENTS, payload=SLOWISH)
    options = ["--concurrency", "16", "--batch-size", "8", "--lease-seconds", "2"]
    options += ["--reap-interval", "0.5", "--poll-interval", "0.2", "--max-retries", "100"]
    with support.workers(dsn, ["survivor"], tmp_path, *options) as procs:
        proc = procs["survivor"]
        support.wait_ready(proc)
        support.wait_until(
            lambda: (
                support.scalar(
                    dsn,
                    "SELECT count(*) FROM upload_pipeline.events WHERE event_type = 'stage_done'",
                )
                > 200
            ),
            60,
            "some progress",
        )
        private_pg_server.stop(mode="immediate")  # a crash: no goodbye to the clients
        private_pg_server.start()
        support.wait_until(lambda: support.unfinished(dsn) == 0, 120, "all jobs done")
        assert proc.poll() is None, support.log_of(proc)  # it never gave up
        codes = support.terminate(procs)
    assert codes == {"survivor": 0}
    assert '"database connection lost; reconnecting"' in support.log_of(proc)
    support.assert_every_stage_done_once(dsn, DOCUMENTS)
