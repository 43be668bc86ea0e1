"""Benchmark: the reference worker against pgqueuer, draining 50,000 no-op jobs.

Run by `make bench`; writes bench/results/worker_throughput.json. Side by side on
one throw-away PostgreSQL (the `pg_server` fixture), for 2 and 4 worker processes:
- ours: `backlog-operator worker --stages queued` processes (real CLI), each job one
  stage transition queued -> job_validated, with leases, fencing and events on;
- pgqueuer: processes running a QueueManager with one no-op entrypoint.
Both sets of workers are started and idle first; the clock starts once the whole
backlog is committed (one statement) and stops when a poll sees it drained, so
process start-up and enqueue cost are outside the figure for both. A figure, not an
assertion: the test only checks that every job was processed exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backlog_operator.db import migrate
from devcluster.postgres import PostgresServer
from tests.integration import test_worker_support as support

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "worker_throughput.json"
JOBS = int(os.environ.get("BENCH_WORKER_JOBS", "50000"))
BATCH = int(os.environ.get("BENCH_WORKER_BATCH", "500"))
PROCESS_COUNTS = (2, 4)
PGQ_DEFAULT_BATCH = 10  # QueueManager.run(batch_size=10)
ROUNDS = int(os.environ.get("BENCH_WORKER_ROUNDS", "2"))
TIMEOUT_SECONDS = 600

PGQ_WORKER = """
import asyncio, signal, sys
import psycopg
from pgqueuer.db import PsycopgDriver
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries

async def main(dsn: str, batch: int) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    qm = QueueManager(Queries(PsycopgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job) -> None:
        pass

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, qm.shutdown.set)
    print("ready", flush=True)
    await qm.run(batch_size=batch)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _drain_seconds(
    dsn: str, enqueue: Callable[[str], None], left: str, procs: list[subprocess.Popen[bytes]]
) -> float:
    """Commit the backlog, then time until the query `left` reports nothing left."""
    enqueue(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        deadline = started + TIMEOUT_SECONDS
        while conn.execute(left).fetchone() != (0,):
            if time.perf_counter() > deadline:
                raise AssertionError("backlog not drained in time")
            if any(proc.poll() is not None for proc in procs):
                raise AssertionError("a worker process exited during the run")
            time.sleep(0.02)
        return time.perf_counter() - started


def _enqueue_ours(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:  # one transaction: the backlog appears at once
        conn.execute(
            "INSERT INTO upload_pipeline.documents (filename) "
            "SELECT 'bench-' || g FROM generate_series(1, %(n)s) AS g",
            {"n": JOBS},
        )
        conn.execute(
            "INSERT INTO upload_pipeline.upload_jobs (document_id) "
            "SELECT document_id FROM upload_pipeline.documents"
        )


def _ours(server: PostgresServer, processes: int, logs: Path) -> dict[str, Any]:
    name = f"bench_ours_{processes}"
    server.drop_database(name)
    dsn = server.create_database(name)
    migrate.apply(dsn)
    options = ["--stages", "queued", "--service-time-scale", "0"]
    options += ["--concurrency", str(BATCH), "--batch-size", str(BATCH)]
    names = [f"bench-{processes}-{i}" for i in range(processes)]
    with support.workers(dsn, names, logs, *options) as procs:
        for proc in procs.values():
            support.wait_ready(proc)
        time.sleep(1)  # LISTEN is set up right after "worker ready"
        seconds = _drain_seconds(
            dsn,
            _enqueue_ours,
            "SELECT count(*) FROM upload_pipeline.upload_jobs WHERE stage = 'queued'",
            list(procs.values()),
        )
        rss = max(_rss_mb(p.pid) for p in procs.values())
        codes = support.terminate(procs)
    assert set(codes.values()) == {0}
    done = support.rows(
        dsn,
        "SELECT count(*), count(DISTINCT job_id) FROM upload_pipeline.events "
        "WHERE event_type = 'stage_done'",
    )
    assert done == [(JOBS, JOBS)]  # every job exactly once
    server.drop_database(name)
    return {"jobs_per_s": JOBS / seconds, "seconds": seconds, "rss_mb": rss}


async def _install_pgqueuer(dsn: str) -> None:
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.queries import Queries

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await Queries(PsycopgDriver(conn)).install()


def _enqueue_pgqueuer(dsn: str) -> None:
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.queries import Queries

    async def enqueue() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            # pgqueuer's batch enqueue: one statement, so the backlog appears at once too
            await Queries(PsycopgDriver(conn)).enqueue(["noop"] * JOBS, [None] * JOBS, [0] * JOBS)

    asyncio.run(enqueue())


def _pgqueuer(
    server: PostgresServer, processes: int, logs: Path, batch: int = BATCH
) -> dict[str, Any]:
    name = f"bench_pgq_{processes}"
    server.drop_database(name)
    dsn = server.create_database(name)
    asyncio.run(_install_pgqueuer(dsn))
    procs = []
    try:
        for i in range(processes):
            log = (logs / f"pgq-{processes}-{i}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", PGQ_WORKER, dsn, str(batch)],
                    stdout=subprocess.PIPE,
                    stderr=log,
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"ready"
        time.sleep(2)  # run() verifies the schema and LISTENs after "ready"
        seconds = _drain_seconds(dsn, _enqueue_pgqueuer, "SELECT count(*) FROM pgqueuer", procs)
        rss = max(_rss_mb(p.pid) for p in procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    logged = support.scalar(
        dsn, "SELECT count(DISTINCT job_id) FROM pgqueuer_log WHERE status = 'successful'"
    )
    server.drop_database(name)
    return {"jobs_per_s": JOBS / seconds, "seconds": seconds, "rss_mb": rss, "logged": logged}


@pytest.mark.integration
def test_worker_throughput_against_pgqueuer(pg_server: PostgresServer, tmp_path: Path) -> None:
    pytest.importorskip("pgqueuer")
    ours: dict[str, dict[str, Any]] = {}
    theirs: dict[str, dict[str, Any]] = {}
    samples: dict[str, dict[str, list[float]]] = {"ours": {}, "pgqueuer": {}}
    for processes in PROCESS_COUNTS:
        key = str(processes)
        # Alternate the two, ROUNDS times, and keep each one's best run: the machine is
        # shared, and the best run is the one least disturbed by others.
        for _ in range(ROUNDS):
            for system, run, best in (("ours", _ours, ours), ("pgqueuer", _pgqueuer, theirs)):
                measured = run(pg_server, processes, tmp_path)
                samples[system].setdefault(key, []).append(round(measured["jobs_per_s"]))
                if key not in best or measured["jobs_per_s"] > best[key]["jobs_per_s"]:
                    best[key] = measured
    # For reference only: pgqueuer with its own default batch size (10), one run each.
    default_batch = {
        str(p): round(_pgqueuer(pg_server, p, tmp_path, PGQ_DEFAULT_BATCH)["jobs_per_s"])
        for p in PROCESS_COUNTS
    }
    ratio = {k: ours[k]["jobs_per_s"] / theirs[k]["jobs_per_s"] for k in ours}
    result = {
        "benchmark": "worker_throughput",
        "jobs": JOBS,
        "batch_size": BATCH,
        "processes": list(PROCESS_COUNTS),
        "ours_jobs_per_s": {k: round(v["jobs_per_s"]) for k, v in ours.items()},
        "pgqueuer_jobs_per_s": {k: round(v["jobs_per_s"]) for k, v in theirs.items()},
        "ratio": {k: round(v, 2) for k, v in ratio.items()},
        "ratio_min": round(min(ratio.values()), 2),
        "worker_rss_mb": round(max(v["rss_mb"] for v in ours.values()), 1),
        "pgqueuer_rss_mb": round(max(v["rss_mb"] for v in theirs.values()), 1),
        "pgqueuer_batch_size": BATCH,
        "pgqueuer_default_batch_jobs_per_s": default_batch,
        "method": "workers started and idle first; clock from the committed backlog "
        "(one statement) to a poll seeing it drained; best of `rounds` alternating runs",
        "ours_config": "stages=queued, no-op handlers, leases+heartbeat+reaper, fenced "
        "completions, stage_started+stage_done events, concurrency=batch_size",
        "rounds": ROUNDS,
        "samples_jobs_per_s": samples,
        "seconds": {
            "ours": {k: round(v["seconds"], 3) for k, v in ours.items()},
            "pgqueuer": {k: round(v["seconds"], 3) for k, v in theirs.items()},
        },
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    assert all(v["logged"] == JOBS for v in theirs.values())  # pgqueuer did all of it too
