"""Arrival traces: parse the `second,arrivals` CSV and spread arrivals within each second.

Called by sim.cli (--trace), the benchmark, and sim.staged (ScaleTest load profiles).
Parsing takes text, not a path, so it stays pure; sim.cli reads the file. Errors are
`TraceError`s whose message names the line, for a one-line CLI error.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HEADER = ("second", "arrivals")


class TraceError(ValueError):
    """A malformed trace; `str()` is one line naming the line number."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Trace:
    """Arrivals per second, index = second from 0."""

    arrivals: tuple[int, ...]

    @property
    def seconds(self) -> int:
        return len(self.arrivals)

    @property
    def total(self) -> int:
        return sum(self.arrivals)


def parse_trace(text: str) -> Trace:
    """Parse `second,arrivals` CSV text: a header, then one row per second from 0."""
    lines = text.splitlines()
    if not lines or tuple(c.strip().lower() for c in lines[0].split(",")) != HEADER:
        got = lines[0].strip()[:40] if lines else "an empty file"
        raise TraceError(1, f"expected the header 'second,arrivals', got {got!r}")
    counts: list[int] = []
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue  # trailing blank lines are harmless
        cells = line.split(",")
        if len(cells) != 2:
            raise TraceError(number, f"expected 2 fields 'second,arrivals', got {len(cells)}")
        second = _int(cells[0], number, "second")
        arrivals = _int(cells[1], number, "arrivals")
        if second != len(counts):
            raise TraceError(number, f"expected second {len(counts)}, got {second}")
        if arrivals < 0:
            raise TraceError(number, f"arrivals must be >= 0, got {arrivals}")
        counts.append(arrivals)
    if not counts:
        raise TraceError(len(lines) + 1, "no rows after the header")
    return Trace(tuple(counts))


def _int(cell: str, line: int, name: str) -> int:
    try:
        return int(cell.strip())
    except ValueError:
        raise TraceError(line, f"{name} is not an integer: {cell.strip()[:20]!r}") from None


def arrival_times(per_second: Sequence[int]) -> array[float]:
    """Arrival instants: second s with n arrivals gets s + (i + 0.5) / n, i < n.

    Evenly spread (not random) so a trace means the same thing for every seed; the
    randomness of a run is in the service times.
    """
    times: array[float] = array("d")
    for second, n in enumerate(per_second):
        if n:
            step = 1.0 / n
            times.extend(second + (i + 0.5) * step for i in range(n))
    return times


def from_counts(counts: Iterable[int]) -> Trace:
    """A trace from per-second counts (ScaleTest load profiles, synthetic traces)."""
    values = tuple(int(c) for c in counts)
    if any(c < 0 for c in values):
        raise ValueError("arrivals must be >= 0")
    return Trace(values)


def synthetic_diurnal(
    seconds: int = 86_400, peak_per_s: float = 50.0, floor_per_s: float = 1.0
) -> Trace:
    """A deterministic day: a raised cosine from `floor_per_s` at midnight to the peak at noon.

    Fractional rates are carried over between seconds so the total is exact.
    """
    counts: list[int] = []
    carry = 0.0
    for second in range(seconds):
        phase = 2 * math.pi * second / seconds
        rate = floor_per_s + (peak_per_s - floor_per_s) * (1 - math.cos(phase)) / 2
        carry += rate
        whole = int(carry)
        counts.append(whole)
        carry -= whole
    return Trace(tuple(counts))
