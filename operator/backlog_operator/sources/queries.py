"""The hub's SQL statements, composed for one (schema, table) with psycopg.sql.Identifier.

The text lives in queries.sql under `-- name:` headers and is loaded once at import.
Called by hub.py (stage_signals each tick), listener.py (LISTEN) and the benchmark.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from backlog_operator.db import queries as sqlfiles

_SQL = sqlfiles.load("backlog_operator.sources", "queries.sql")


@functools.cache
def stage_signals(schema: str, table: str) -> sql.Composed:
    """Per-stage backlog and flow for `schema`.`table` (parameters: stages, window_s)."""
    return sql.SQL(_SQL["stage_signals"]).format(
        schema=sql.Identifier(schema), table=sql.Identifier(table)
    )


def listen(channel: str) -> sql.Composed:
    """LISTEN on `channel` (an identifier: quoted, never formatted)."""
    return sql.SQL(_SQL["listen"]).format(channel=sql.Identifier(channel))


def unlisten(channel: str) -> sql.Composed:
    """UNLISTEN `channel`."""
    return sql.SQL(_SQL["unlisten"]).format(channel=sql.Identifier(channel))


@dataclass(frozen=True, slots=True)
class StageRow:
    """One row of stage_signals: what the database says about one stage right now.

    `completions` and `failures` count stage_done and error events of the window;
    `service_time_s` is the mean `seconds` the worker recorded in those stage_done events.
    """

    stage: str
    ready: int
    in_flight: int
    waiting: int  # retryable rows whose retry_at is still in the future
    oldest_ready_s: float | None
    completions: int
    failures: int
    service_time_s: float | None

    @property
    def active(self) -> int:
        """Every row of the stage that is not finished."""
        return self.ready + self.in_flight + self.waiting


class IncompleteReading(RuntimeError):
    """The query returned NULL counts or missed a stage: never read that as zero."""


def parse_rows(rows: list[tuple[Any, ...]], stages: tuple[str, ...]) -> dict[str, StageRow]:
    """StageRows keyed by stage; raises IncompleteReading on NULLs or missing stages."""
    parsed: dict[str, StageRow] = {}
    for row in rows:
        stage, ready, in_flight, waiting, oldest, completions, failures, service = row[:8]
        if None in (stage, ready, in_flight, waiting, completions, failures):
            raise IncompleteReading(f"NULL count in the reading of stage {stage!r}")
        parsed[stage] = StageRow(
            stage=stage,
            ready=int(ready),
            in_flight=int(in_flight),
            waiting=int(waiting),
            oldest_ready_s=None if oldest is None else max(0.0, float(oldest)),
            completions=int(completions),
            failures=int(failures),
            service_time_s=None if service is None else float(service),
        )
    missing = set(stages) - set(parsed)
    if missing:
        raise IncompleteReading(f"no reading for stages {sorted(missing)}")
    return parsed
