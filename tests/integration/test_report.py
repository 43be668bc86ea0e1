"""`backlog-operator report` from a recorded run: rows put straight into the results tables
(migration 0020) of a real PostgreSQL, then the report's structure and numbers checked
(not its pixels; the PNGs must exist and be valid images).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from PIL import Image

from backlog_operator.report import cli, load

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
SCALERS = ("parse-workers", "chunk-workers", "embed-workers")
# stage -> (completions, service_total seconds, AVG(updated_at - created_at))
LOAD_STAGES = {
    "parsing": (300, 30.0, 4.0),
    "chunking": (300, 15.0, 9.0),
    "embedding": (300, 150.0, 15.0),
}


def _results(throughput: float, p95: float, lost: int) -> dict[str, Any]:
    return {
        "jobs": 300,
        "done": 300 - lost,
        "deadletter": 0,
        "lostJobs": lost,
        "duplicateCompletions": 0,
        "throughputPerSecond": throughput,
        "producerRatePerSecond": 10.0,
        "requestedRatePerSecond": 10.0,
        "latency": {"endToEnd": {"p50": 1.2, "p95": p95, "p99": p95 + 2}},
        "queueWaitP95Seconds": 2.1,
        "timeToFirstScaleSeconds": 3.0,
        "drainSeconds": 10.0,
        "maxReplicas": {s: 4 for s in SCALERS},
        "replicaSeconds": {s: 100.0 for s in SCALERS},
        "bottleneck": {"stage": "embedding", "share": 0.6, "utilization": 0.9},
        "verdict": "Passed",
    }


def record_run(
    conn: psycopg.Connection,
    run_id: str,
    *,
    throughput: float = 7.5,
    p95: float = 3.4,
    lost: int = 0,
    slo_met: bool = True,
) -> None:
    """A finished Spike run: 10 s baseline, 30 s load, 10 s drain, sampled every second."""
    at = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    spec = {
        "database": {"dsnSecretRef": {"name": "db"}},
        "scalers": list(SCALERS),
        "load": {
            "profile": "Spike",
            "ratePerSecond": 5,
            "peakRatePerSecond": 20,
            "loadFactor": 2,
            "producers": 10,
            "durationSeconds": 30,
            "spikeStartSeconds": 10,
            "spikeDurationSeconds": 10,
        },
        "slo": {"p95EndToEndSeconds": 5.0, "maxLostJobs": 0},
    }
    conn.execute(
        "INSERT INTO backlog_operator.scaletest_runs (run_id, namespace, name, mode, profile,"
        " spec, phase, verdict, requested_rate, baseline_throughput, baseline_requested,"
        " load_requested, started_at, baseline_started_at, baseline_finished_at, load_started_at,"
        " load_finished_at, drain_finished_at, completed_at, results, db_profile)"
        " VALUES (%s, 'demo', %s, 'Live', 'Spike', %s, %s, %s, 10, 4.8, 50, 300,"
        "         %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            run_id,
            run_id.split("-")[0],
            json.dumps(spec),
            "Succeeded" if slo_met else "Failed",
            "Passed" if slo_met else "Failed",
            at(0),
            at(0),
            at(10),
            at(10),
            at(40),
            at(50),
            at(51),
            json.dumps(_results(throughput, p95, lost)),
            json.dumps(
                {
                    "pg_stat_statements": False,
                    "connections_by_state": {"idle": 5, "active": 2},
                    "lock_waits": 0,
                    "live_tuples": 350,
                    "dead_tuples": 40,
                    "max_lock_waits_during_run": 3,
                    "max_connections_during_run": 17,
                    "top_statements": "absent: the pg_stat_statements extension is not installed",
                }
            ),
        ),
    )
    for part in ("baseline", "load"):
        for stage, (n, service, avg) in LOAD_STAGES.items():
            n = n if part == "load" else 50
            conn.execute(
                "INSERT INTO backlog_operator.scaletest_stage_stats (run_id, part, stage,"
                " completions, latency_p50, latency_p95, latency_p99, queue_wait_p50,"
                " queue_wait_p95,"
                " queue_wait_total, service_p50, service_p95, service_total,"
                " avg_updated_minus_created, utilization)"
                " VALUES (%s, %s, %s, %s, 0.5, 1.5, 2.0, 0.1, 0.9, 10, 0.05, 0.2, %s, %s, 0.7)",
                (run_id, part, stage, n, service, avg),
            )
    conn.execute(
        "INSERT INTO backlog_operator.scaletest_slo_results VALUES"
        " (%s, 'p95EndToEndSeconds', 5.0, %s, %s), (%s, 'maxLostJobs', 0, %s, %s)",
        (run_id, p95, p95 <= 5.0, run_id, lost, lost == 0),
    )
    for second in range(0, 51):
        phase = "Baseline" if second < 10 else "Loading" if second < 40 else "Draining"
        produced = min(300, max(0, second - 10) * 10)
        completed = min(300, max(0, second - 12) * 8)
        conn.execute(
            "INSERT INTO backlog_operator.scaletest_samples VALUES (%s, %s, %s, %s, %s, 0)",
            (run_id, at(second), phase, produced, completed),
        )
        for stage in ("parsing", "chunking", "embedding"):
            conn.execute(
                "INSERT INTO backlog_operator.scaletest_stage_samples"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (run_id, at(second), stage, max(0, produced - completed) // 3, 2, completed),
            )
        for i, scaler in enumerate(SCALERS):
            desired = 0 if second < 12 else 4 if second < 45 else 1
            conn.execute(
                "INSERT INTO backlog_operator.scaletest_scaler_samples VALUES (%s, %s, %s, %s, %s)",
                (run_id, at(second), scaler, desired, max(0, desired - i % 2)),
            )
    # Finished load jobs, still present: latency over time comes from them.
    for k in range(20):
        doc = uuid.uuid4()
        conn.execute(
            "INSERT INTO upload_pipeline.documents (document_id, filename, run_id)"
            " VALUES (%s, 'f', %s)",
            (doc, run_id),
        )
        conn.execute(
            "INSERT INTO upload_pipeline.upload_jobs (document_id, stage, state, payload, run_id,"
            " created_at, updated_at, finished_at)"
            " VALUES (%s, 'embedded', 'done', '{\"part\": \"load\"}', %s, %s, %s, %s)",
            (doc, run_id, at(10 + k), at(12 + k), at(10 + k + 1 + k % 4)),
        )


def _report(dsn: str, out: Path, *args: str) -> str:
    result = CliRunner().invoke(cli.report, [*args, "--dsn", dsn, "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output.strip()


def _table_row(text: str, first_cell: str) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row {first_cell!r}")


def test_report_from_a_recorded_run(migrated_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        record_run(conn, "spike-0001")
    path = Path(_report(migrated_dsn, tmp_path, "spike-0001"))
    assert path == tmp_path / "spike-0001" / "report.md"
    text = path.read_text()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "# ScaleTest report: spike-0001",
        "## Summary and verdict",
        "## Per-stage baselines",
        "### Baseline",
        "### Load",
        "## Bottleneck",
        "### Database profile",
        "## Optimizations from evidence",
        "### Index advisor",
        "### Pool size",
        "### Replicas and reaction",
        "## Scaling validation",
        "## Simulated comparison: our policy and KEDA + HPA defaults",
    ]
    assert "**Passed**: all 2 SLOs met." in text
    assert _table_row(text, "throughput")[1] == "7.50 jobs/s"
    assert _table_row(text, "end-to-end p50 / p95 / p99")[1] == "1.20 / 3.40 / 5.40 s"
    # Per-stage: the original plan's figure sits next to the event percentiles (load table last).
    load_part = text.split("### Load")[1]
    assert _table_row(load_part, "embedding")[8] == "15.00"
    assert _table_row(load_part, "parsing")[1] == "300"
    assert "**embedding** held 60% of all queue wait" in text
    profile = text.split("### Database profile")[1]
    assert _table_row(profile, "sessions waiting on locks")[1:] == ["0", "3"]
    assert _table_row(profile, "connections")[1:] == ["idle: 5, active: 2", "17"]
    # Pool size by Little's law: embedding 150 s / 300 jobs = 0.5 s; 7.5/s -> 3.75 busy,
    # 3.75 / 0.8 -> 5 slots; the spike's peak 20 x 2 = 40/s -> 20 busy -> 25 slots.
    pool = text.split("### Pool size")[1].split("###")[0]
    assert _table_row(pool, "embedding")[1:] == ["0.500", "3.75", "5", "25"]
    assert _table_row(pool, "parsing")[1:] == ["0.100", "0.75", "1", "5"]
    # A healthy schema: both queries served by their partial indexes, no statement proposed.
    assert text.count("served by its partial indexes") == 2 and "```sql" not in text
    assert _table_row(text, "p95EndToEndSeconds")[1:] == ["5.00", "3.40", "yes"]
    # Charts: present, linked, valid PNGs.
    for name in ("backlog.png", "replicas.png", "throughput.png", "latency.png"):
        assert f"]({name})" in text
        with Image.open(path.parent / name) as image:
            image.verify()
            assert image.format == "PNG"


def test_latency_series_from_the_jobs(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        record_run(conn, "spike-0002")
        data = load.load(conn, "spike")  # by ScaleTest name: its latest run
    assert data.info.run_id == "spike-0002"
    assert data.latency_source == "jobs"
    assert sum(p.count for p in data.latency) == 20
    assert data.bucket_seconds == 1.0
    first = data.latency[0]  # job 0: created at +0 s, finished at +1 s (from the load's start)
    assert (first.at, first.count, first.p50) == (1.0, 1, 1.0)
    assert len(data.samples) == 51 and data.samples[0].at == -10.0
    assert data.scalers == ("chunk-workers", "embed-workers", "parse-workers")


def test_missing_index_is_proposed_as_a_statement(migrated_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        record_run(conn, "spike-0003")
        conn.execute("DROP INDEX upload_pipeline.upload_jobs_ready")
    text = Path(_report(migrated_dsn, tmp_path, "spike-0003")).read_text()
    advisor_part = text.split("### Index advisor")[1].split("### Pool size")[0]
    assert "no index serves it" in advisor_part.split("\n\n")[1]  # the claim
    sql = re.search(r"```sql\n(.*?)\n```", advisor_part, re.DOTALL)
    assert sql is not None
    assert sql.group(1).startswith(
        "CREATE INDEX CONCURRENTLY upload_jobs_ready ON upload_pipeline.upload_jobs"
    )
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(sql.group(1))  # the proposal is a working statement


def test_compare_shows_deltas(migrated_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        record_run(conn, "before-0001", throughput=7.5, p95=6.0, lost=2, slo_met=False)
        record_run(conn, "after-0001", throughput=10.0, p95=3.0)
    text = Path(
        _report(migrated_dsn, tmp_path, "after-0001", "--compare", "before-0001")
    ).read_text()
    part = text.split("## Before / after")[1]
    assert "Before: `before-0001` (Failed); after: `after-0001` (Passed)." in part
    assert _table_row(part, "throughput")[1:] == ["7.50", "10.00", "+2.50", "+33%", "better"]
    assert _table_row(part, "end-to-end p95")[1:] == ["6.00", "3.00", "-3.00", "-50%", "better"]
    assert _table_row(part, "lost jobs")[1:] == ["2.00", "0.00", "-2.00", "-100%", "better"]
    assert _table_row(part, "drain")[1:] == ["10.00", "10.00", "+0.00", "+0%", "same"]
    assert _table_row(part, "SLOs met")[1:4] == ["0.00", "2.00", "+2.00"]


def test_html_inlines_the_charts(migrated_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        record_run(conn, "spike-0004")
    path = Path(_report(migrated_dsn, tmp_path, "spike-0004", "--format", "html"))
    html = path.read_text()
    assert path.name == "report.html"
    assert html.count('src="data:image/png;base64,') == 4
    assert "<h2>Summary and verdict</h2>" in html and "<table>" in html


def test_unknown_run_is_a_clear_error(migrated_dsn: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli.report, ["nope", "--dsn", migrated_dsn, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "no ScaleTest run 'nope'" in result.output


def test_latency_falls_back_to_events_after_cleanup(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        record_run(conn, "clean-0001")
        # cleanup removed the run's documents and jobs; the events stay (no foreign key).
        conn.execute("DELETE FROM upload_pipeline.documents WHERE run_id = 'clean-0001'")
        for k in range(4):
            job = uuid.uuid4()
            conn.execute(
                "INSERT INTO upload_pipeline.events (job_id, stage, event_type, created_at)"
                " VALUES (%s, 'queued', 'stage_started', %s)",
                (job, T0 + timedelta(seconds=12 + k)),
            )
            conn.execute(
                "INSERT INTO upload_pipeline.events (job_id, event_type, detail, created_at)"
                " VALUES (%s, 'finalized', '{\"state\": \"done\"}', %s)",
                (job, T0 + timedelta(seconds=14 + k)),
            )
        data = load.load(conn, "clean-0001")
    assert data.latency_source == "events"
    assert sum(p.count for p in data.latency) == 4
    assert {p.p50 for p in data.latency} == {2.0}  # first claim to finalized


def _scaler_spec(stages: list[str]) -> dict[str, Any]:
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"},
        "database": {"dsnSecretRef": {"name": "db"}},
        "source": {"stages": stages},
        "maxReplicas": 4,
        "pollIntervalSeconds": 2,
        "policy": {"type": "QueueWait", "targetQueueWaitSeconds": 5},
    }


def test_simulated_comparison_replays_the_load(migrated_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        record_run(conn, "sim-0001")
    scalers = {
        "parse-workers": _scaler_spec(["queued", "job_validated", "parsing"]),
        "chunk-workers": _scaler_spec(["chunking", "chunked"]),
        "embed-workers": _scaler_spec(["embedding", "embedded"]),
    }
    path = cli.write_report(migrated_dsn, "sim-0001", out=tmp_path, scalers=scalers)
    part = path.read_text().split("## Simulated comparison")[1]
    # 10 jobs/s for 20 s and 40 jobs/s for the 10 s spike (loadFactor 2): 600 in both runs.
    assert _table_row(part, "jobs")[1:] == ["300", "600", "600"]
    assert "targetQueryValue per pool: chunk-workers 10, embed-workers 10, parse-workers 10" in part
    for figure in (
        "end-to-end p95 (s)",
        "time to first scale-up (s)",
        "replica-seconds, all pools",
    ):
        live, ours, keda = _table_row(part, figure)[1:]
        assert float(ours) >= 0 and float(keda) >= 0, (figure, live, ours, keda)
    # The pool advice now knows each scaler's stages and maxReplicas.
    pool = path.read_text().split("### Pool size")[1].split("###")[0]
    assert [r for r in ("parse-workers", "chunk-workers", "embed-workers") if f"| {r} |" in pool]


def test_simulated_comparison_needs_the_scalers(migrated_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        record_run(conn, "sim-0002")
    text = cli.write_report(migrated_dsn, "sim-0002", out=tmp_path).read_text()
    assert "Not simulated: needs the BacklogScaler specs (pass --kubeconfig)." in text
