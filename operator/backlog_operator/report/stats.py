"""`backlog-operator stats`: the pipeline per stage, now (or refreshed with --watch).

    backlog-operator stats --dsn DSN [--schema upload_pipeline] [--watch] [--interval 2]
                           [--count N] [--plain | --json]

Columns: ready, in flight, done in the last hour, the original plan's
AVG(updated_at - created_at) over the last hour, and time in stage p50/p95 plus
service time p95 from the events. One query (stats.sql: stage_table) per refresh.
Loaded lazily by backlog_operator.cli.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import click
import psycopg

from backlog_operator import pipeline
from backlog_operator.db import migrate, queries
from backlog_operator.db.cli import dsn_option, one_line
from backlog_operator.report import table

query = functools.partial(queries.in_schema, "backlog_operator.report", "stats.sql")

STATEMENT_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class StageRow:
    stage: str
    ready: int
    in_flight: int
    done_last_hour: int
    avg_updated_minus_created: float | None
    in_stage_p50: float | None
    in_stage_p95: float | None
    service_p95: float | None


def _order(stage: str) -> int:
    return pipeline.STAGES.index(stage) if stage in pipeline.STAGES else len(pipeline.STAGES)


def read(conn: psycopg.Connection, schema: str = pipeline.DEFAULT_SCHEMA) -> tuple[StageRow, ...]:
    """One row per stage with active jobs or activity in the last hour, in pipeline order."""
    conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    rows = [StageRow(*row) for row in conn.execute(query("stage_table", schema)).fetchall()]
    return tuple(sorted(rows, key=lambda r: _order(r.stage)))


def to_table(rows: Sequence[StageRow], at: datetime) -> table.Table:
    f = table.fmt
    body = tuple(
        (
            r.stage,
            str(r.ready),
            str(r.in_flight),
            str(r.done_last_hour),
            f(r.avg_updated_minus_created),
            f(r.in_stage_p50),
            f(r.in_stage_p95),
            f(r.service_p95, 3),
        )
        for r in rows
    )
    total = (
        "total",
        str(sum(r.ready for r in rows)),
        str(sum(r.in_flight for r in rows)),
        str(sum(r.done_last_hour for r in rows)),
        "",
        "",
        "",
        "",
    )
    return table.Table(
        title=f"pipeline stages at {at:%Y-%m-%d %H:%M:%S} UTC (times in seconds)",
        columns=(
            "stage",
            "ready",
            "in flight",
            "done 1h",
            "avg(upd-created) 1h",
            "in stage p50",
            "in stage p95",
            "service p95",
        ),
        rows=(*body, total) if rows else (),
        numeric=frozenset(range(1, 8)),
    )


def _snapshot(dsn: str, schema: str) -> tuple[StageRow, ...]:
    try:
        with migrate.connect(dsn) as conn:
            return read(conn, schema)
    except psycopg.Error as error:
        raise click.ClickException(one_line(error)) from None


def _emit(rows: Sequence[StageRow], plain: bool, as_json: bool) -> None:
    at = datetime.now(UTC)
    if as_json:
        click.echo(json.dumps({"at": at.isoformat(), "stages": [asdict(r) for r in rows]}))
        return
    shown = to_table(rows, at)
    if not rows:
        click.echo(f"{shown.title}\nno active jobs and no activity in the last hour")
        return
    table.show(shown, force_plain=plain)


@click.command("stats")
@dsn_option
@click.option("--schema", default=pipeline.DEFAULT_SCHEMA, show_default=True)
@click.option("--watch", "-w", is_flag=True, help="Refresh every --interval seconds.")
@click.option("--interval", type=click.FloatRange(0.1), default=2.0, show_default=True)
@click.option("--count", type=click.IntRange(1), default=None, help="With --watch: stop after N.")
@click.option("--plain", is_flag=True, help="Plain text even on a terminal.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per refresh.")
def stats(
    dsn: str,
    schema: str,
    watch: bool,
    interval: float,
    count: int | None,
    plain: bool,
    as_json: bool,
) -> None:
    """Per-stage backlog, throughput and latency of the pipeline, now."""
    if not watch:
        _emit(_snapshot(dsn, schema), plain, as_json)
        return
    if table.use_rich(force_plain=plain or as_json):
        _watch_rich(dsn, schema, interval, count)
        return
    shown = 0
    while count is None or shown < count:
        if shown:
            time.sleep(interval)
        _emit(_snapshot(dsn, schema), plain, as_json)
        shown += 1


def _watch_rich(dsn: str, schema: str, interval: float, count: int | None) -> None:
    from rich.live import Live

    shown = 0
    with Live(auto_refresh=False) as live:
        while count is None or shown < count:
            if shown:
                time.sleep(interval)
            rows = _snapshot(dsn, schema)
            live.update(table.to_rich(to_table(rows, datetime.now(UTC))), refresh=True)
            shown += 1
