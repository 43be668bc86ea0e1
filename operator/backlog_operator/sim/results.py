"""Metrics of a simulated run, the terminal table and the `--json` document.

Called by sim.run (builds `PolicyResult`s from engine results), sim.cli (prints and
writes them), sim.plot and the benchmark. Pure: returns strings and dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backlog_operator.sim.engine import EngineResult, Series

# Keys of one policy in the --json document (issue 6), in table order.
JSON_KEYS = (
    "p50_wait_s",
    "p95_wait_s",
    "p99_wait_s",
    "max_backlog",
    "drain_s",
    "replica_seconds",
    "scale_changes",
    "killed_in_flight",
)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of already sorted values; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(math.ceil(q / 100 * len(sorted_values)), 1)
    return float(sorted_values[rank - 1])


@dataclass(frozen=True)
class PolicyResult:
    """What issue 6 reports per policy, plus conservation counters and the time series."""

    name: str
    p50_wait_s: float
    p95_wait_s: float
    p99_wait_s: float
    mean_wait_s: float
    max_backlog: int
    drain_s: float | None  # last completion - last arrival; None if never drained
    replica_seconds: float
    scale_changes: int
    killed_in_flight: int
    arrived: int
    completed: int
    queued_at_end: int
    in_flight_at_end: int
    max_replicas: int
    first_scale_s: float | None
    end_s: float
    series: Series

    def as_json(self) -> dict[str, Any]:
        """The issue's per-policy object (`p50_wait_s` added), rounded for humans."""
        out: dict[str, Any] = {}
        for key in JSON_KEYS:
            value = getattr(self, key)
            out[key] = round(value, 3) if isinstance(value, float) else value
        return out

    def series_json(self) -> dict[str, list[int]]:
        s = self.series
        return {
            "arrivals": list(s.arrivals),
            "backlog": list(s.backlog),
            "in_flight": list(s.in_flight),
            "replicas": list(s.replicas),
            "desired": list(s.desired),
        }


def summarize(name: str, raw: EngineResult) -> PolicyResult:
    """Percentiles and the drain time from an engine run."""
    waits = sorted(raw.waits)
    drained = raw.queued_at_end == 0 and raw.in_flight_at_end == 0
    drain: float | None = None
    if raw.last_arrival_s is not None and drained:
        drain = max((raw.last_completion_s or 0.0) - raw.last_arrival_s, 0.0)
    return PolicyResult(
        name=name,
        p50_wait_s=percentile(waits, 50),
        p95_wait_s=percentile(waits, 95),
        p99_wait_s=percentile(waits, 99),
        mean_wait_s=sum(waits) / len(waits) if waits else 0.0,
        max_backlog=raw.max_backlog,
        drain_s=drain,
        replica_seconds=raw.replica_seconds,
        scale_changes=raw.scale_changes,
        killed_in_flight=raw.killed_in_flight,
        arrived=raw.arrived,
        completed=raw.completed,
        queued_at_end=raw.queued_at_end,
        in_flight_at_end=raw.in_flight_at_end,
        max_replicas=raw.max_replicas,
        first_scale_s=raw.scale_log[0][0] if raw.scale_log else None,
        end_s=raw.end_s,
        series=raw.series,
    )


def to_json(
    results: Mapping[str, PolicyResult],
    inputs: Mapping[str, Any] | None = None,
    series: bool = False,
) -> dict[str, Any]:
    """`{"policies": {name: {...}}}`; with `series`, per-second samples under "series"."""
    doc: dict[str, Any] = {"policies": {n: r.as_json() for n, r in results.items()}}
    if inputs:
        doc["inputs"] = dict(inputs)
    if series:
        doc["series"] = {n: r.series_json() for n, r in results.items()}
    return doc


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"


def table(results: Mapping[str, PolicyResult]) -> str:
    """A plain-text table: one row per metric, one column per policy, ratio when two."""
    names = list(results)
    rows = [("metric", *names)]
    ratio = len(names) == 2
    if ratio:
        rows[0] = (*rows[0], f"{names[0]}/{names[1]}")
    for key in (*JSON_KEYS, "max_replicas", "completed"):
        values = [getattr(results[n], key) for n in names]
        row = (key, *(_fmt(v) for v in values))
        if ratio:
            a, b = values
            row = (*row, f"{a / b:.2f}" if a is not None and b else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
