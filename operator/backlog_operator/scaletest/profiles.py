"""Load profiles as a per-second arrival schedule, and how many jobs are due by when.

`rates(load, ...)` gives the target arrivals for each second of the load
(Constant, Step, Ramp, Spike or a Trace CSV `second,arrivals`), multiplied by
loadFactor; with fromBaseline the base rate is the baseline's measured
throughput. `Schedule.due(elapsed)` is the cumulative number of jobs that should
exist `elapsed` seconds after the part began (linear within a second, capped at
maxJobs); producers close the gap to it, so a restarted producer catches up to
the same schedule and the total never changes. Pure; called by
scaletest/producers.py, the handlers and the unit tests.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from backlog_operator.api.scaletest import Load, Profile, SpecError

# Floating-point sums of fractional rates must not lose the last job to 1e-12.
_EPSILON = 1e-9


class TraceError(ValueError):
    """The trace CSV is not `second,arrivals` with one row per second from 0."""


def parse_trace_csv(text: str) -> tuple[float, ...]:
    """Arrivals per second from a `second,arrivals` CSV (header, rows 0, 1, 2, ...)."""
    reader = csv.reader(io.StringIO(text))
    rows = [row for row in reader if row and any(cell.strip() for cell in row)]
    if not rows:
        raise TraceError("the trace is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    if header[:2] != ["second", "arrivals"]:
        raise TraceError(f"the trace header must be 'second,arrivals', got {','.join(rows[0])!r}")
    arrivals: list[float] = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            second, value = int(row[0]), float(row[1])
        except (IndexError, ValueError):
            raise TraceError(f"line {line}: expected 'second,arrivals', got {row!r}") from None
        if second != len(arrivals):
            raise TraceError(f"line {line}: expected second {len(arrivals)}, got {second}")
        if value < 0 or not math.isfinite(value):
            raise TraceError(f"line {line}: arrivals must be a finite number >= 0")
        arrivals.append(value)
    if not arrivals:
        raise TraceError("the trace has a header but no rows")
    return tuple(arrivals)


def spike_window(load: Load) -> tuple[int, int]:
    """[start, end) seconds of a Spike; an absent start centres the spike."""
    duration = min(load.spike_duration_seconds, load.duration_seconds)
    if load.spike_start_seconds is None:
        start = (load.duration_seconds - duration) // 2
    else:
        start = load.spike_start_seconds
    return start, min(start + duration, load.duration_seconds)


def rates(
    load: Load,
    *,
    baseline_throughput: float | None = None,
    trace: Sequence[float] | None = None,
) -> tuple[float, ...]:
    """Target arrivals for each second of the load, loadFactor applied."""
    factor = load.load_factor
    if load.from_baseline:
        if baseline_throughput is None:
            raise SpecError("spec.load.fromBaseline needs the baseline's measured throughput")
        base = baseline_throughput
    else:
        base = load.rate_per_second or 0.0
    seconds = range(load.duration_seconds)
    if load.profile is Profile.CONSTANT:
        out = [base for _ in seconds]
    elif load.profile is Profile.SPIKE:
        start, end = spike_window(load)
        peak = load.peak_rate_per_second or 0.0
        out = [peak if start <= s < end else base for s in seconds]
    elif load.profile is Profile.RAMP:
        peak = load.peak_rate_per_second or 0.0
        # The mean rate over second s of a linear ramp from base to peak.
        out = [base + (peak - base) * (s + 0.5) / load.duration_seconds for s in seconds]
    elif load.profile is Profile.STEP:
        out = [_step_rate(load, s, base) for s in seconds]
    else:
        if trace is None:
            raise SpecError("spec.load.trace: the Trace profile needs the trace's rows")
        out = list(trace[: load.duration_seconds])
    return tuple(rate * factor for rate in out)


def _step_rate(load: Load, second: int, before_first: float) -> float:
    rate = before_first
    for step in load.steps:
        if step.after_seconds <= second:
            rate = step.rate_per_second
    return rate


@dataclass(frozen=True)
class Schedule:
    """A part's arrival schedule: per-second rates and the job cap."""

    per_second: tuple[float, ...]
    max_jobs: int

    @property
    def duration_seconds(self) -> int:
        return len(self.per_second)

    @property
    def total(self) -> int:
        """Jobs the whole schedule creates: fixed, so a restart aims at the same number."""
        return min(self.max_jobs, math.floor(sum(self.per_second) + _EPSILON))

    @property
    def mean_rate(self) -> float:
        return sum(self.per_second) / len(self.per_second) if self.per_second else 0.0

    def due(self, elapsed: float) -> int:
        """Jobs that should exist `elapsed` seconds into the part (0 before it begins)."""
        if elapsed <= 0:
            return 0
        whole = min(int(elapsed), len(self.per_second))
        done = sum(self.per_second[:whole])
        if whole < len(self.per_second):
            done += self.per_second[whole] * (elapsed - whole)
        return min(self.total, math.floor(done + _EPSILON))

    def seconds_until(self, count: int) -> float | None:
        """The earliest elapsed time at which `count` jobs are due; None if never."""
        if count <= 0:
            return 0.0
        if count > self.total:
            return None
        cumulative = 0.0
        for second, rate in enumerate(self.per_second):
            if rate > 0 and cumulative + rate + _EPSILON >= count:
                return second + max(0.0, (count - cumulative) / rate)
            cumulative += rate
        return float(len(self.per_second))


def constant(rate: float, duration_seconds: int, max_jobs: int) -> Schedule:
    """The baseline's schedule: a gentle constant rate."""
    return Schedule(tuple(rate for _ in range(duration_seconds)), max_jobs)


def share(due: int, producers: int, index: int) -> int:
    """How many of the first `due` sequence numbers producer `index` of `producers` owns.

    Producer i owns every seq with seq % producers == i.
    """
    if due <= index:
        return 0
    return (due - index + producers - 1) // producers
