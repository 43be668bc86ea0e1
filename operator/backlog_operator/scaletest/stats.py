"""Small statistics over sampled series: percentiles, step integrals, first scale-up.

Pure (numbers in, numbers out); the same percentile definition as PostgreSQL's
percentile_cont, so figures computed here and in SQL agree. Called by
scaletest/analysis.py and the unit tests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (percentile_cont); None for no values."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    weight = position - low
    return float(ordered[low] * (1 - weight) + ordered[high] * weight)


@dataclass(frozen=True)
class Point:
    """One sample of a step function: `value` holds from `at` (seconds) until the next point."""

    at: float
    value: float


def step_integral(points: Sequence[Point], end: float | None = None) -> float:
    """The area under a step function (e.g. replica-seconds); the last point holds until `end`."""
    ordered = sorted(points, key=lambda p: p.at)
    total = 0.0
    for current, following in itertools.pairwise(ordered):
        total += current.value * (following.at - current.at)
    if ordered and end is not None and end > ordered[-1].at:
        total += ordered[-1].value * (end - ordered[-1].at)
    return total


def first_rise(points: Sequence[Point], start: float) -> float | None:
    """Seconds from `start` until the value first exceeds its value at `start`; None if never.

    The value at `start` is the last point at or before it (or the first point after).
    """
    ordered = sorted(points, key=lambda p: p.at)
    if not ordered:
        return None
    before = [p for p in ordered if p.at <= start]
    initial = before[-1].value if before else ordered[0].value
    for point in ordered:
        if point.at >= start and point.value > initial:
            return point.at - start
    return None


def maximum(points: Sequence[Point]) -> float | None:
    return max((p.value for p in points), default=None)
