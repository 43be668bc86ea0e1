"""Service-time distributions for simulated jobs, and the `--service-time` syntax.

Called by sim.engine (one draw per started job), sim.cli (parses the flag) and
sim.staged (per-stage service times of a ScaleTest workload). Draws come from a
seeded `random.Random` owned by the engine, so runs are reproducible.
"""

from __future__ import annotations

import enum
import math
import random
from array import array
from collections.abc import Callable
from dataclasses import dataclass

SYNTAX = "MEAN[:DIST[:cv=CV]]  (DIST: Constant, Exponential (default), LogNormal; cv for LogNormal)"


class Distribution(enum.StrEnum):
    """Shape of the service time around its mean (names as in ScaleTest workload)."""

    CONSTANT = "Constant"
    EXPONENTIAL = "Exponential"
    LOGNORMAL = "LogNormal"


@dataclass(frozen=True)
class ServiceTime:
    """Mean seconds per job and a distribution; `cv` (stddev/mean) is LogNormal's spread."""

    mean_s: float
    distribution: Distribution = Distribution.EXPONENTIAL
    cv: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean_s) and self.mean_s > 0):
            raise ValueError(f"mean service time must be > 0, got {self.mean_s}")
        if not (math.isfinite(self.cv) and self.cv >= 0):
            raise ValueError(f"cv must be >= 0, got {self.cv}")

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """A zero-argument draw function bound to `rng` (cheap to call per job)."""
        mean = self.mean_s
        if self.distribution is Distribution.CONSTANT:
            return lambda: mean
        if self.distribution is Distribution.EXPONENTIAL:
            rate = 1.0 / mean
            return lambda: rng.expovariate(rate)
        # LogNormal with the given mean and cv: sigma^2 = ln(1 + cv^2), mu = ln(mean) - sigma^2/2.
        sigma2 = math.log1p(self.cv * self.cv)
        mu = math.log(mean) - sigma2 / 2
        sigma = math.sqrt(sigma2)
        return lambda: rng.lognormvariate(mu, sigma)

    def draws(self, rng: random.Random, count: int) -> array[float]:
        """`count` draws in one go (the engine sizes every job up front, in arrival order).

        Same values as calling `sampler(rng)` `count` times, without a call per draw.
        """
        mean = self.mean_s
        if self.distribution is Distribution.CONSTANT:
            return array("d", [mean]) * count
        if self.distribution is Distribution.EXPONENTIAL:
            uniform, log = rng.random, math.log
            # random.expovariate's formula, inlined: -log(1 - U) / rate.
            return array("d", [-log(1.0 - uniform()) * mean for _ in range(count)])
        draw = self.sampler(rng)
        return array("d", [draw() for _ in range(count)])

    def __str__(self) -> str:
        tail = f":cv={self.cv:g}" if self.distribution is Distribution.LOGNORMAL else ""
        return f"{self.mean_s:g}:{self.distribution.value}{tail}"


def parse_service_time(text: str) -> ServiceTime:
    """Parse `MEAN[:DIST[:cv=CV]]`, e.g. `1.0`, `1.0:Exponential`, `1.0:LogNormal:cv=0.5`.

    Raises ValueError with a one-line message (the CLI names the flag).
    """
    parts = [p.strip() for p in text.split(":")]
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"expected {SYNTAX}, got {text!r}")
    try:
        mean = float(parts[0])
    except ValueError:
        raise ValueError(f"mean is not a number: {parts[0]!r} (expected {SYNTAX})") from None
    distribution = Distribution.EXPONENTIAL
    if len(parts) >= 2:
        by_name = {d.value.lower(): d for d in Distribution}
        found = by_name.get(parts[1].lower())
        if found is None:
            names = ", ".join(d.value for d in Distribution)
            raise ValueError(f"unknown distribution {parts[1]!r} (one of {names})")
        distribution = found
    cv = 1.0
    if len(parts) == 3:
        key, _, value = parts[2].partition("=")
        if key.strip().lower() != "cv" or not value:
            raise ValueError(f"expected cv=NUMBER, got {parts[2]!r}")
        if distribution is not Distribution.LOGNORMAL:
            raise ValueError("cv applies only to LogNormal")
        try:
            cv = float(value)
        except ValueError:
            raise ValueError(f"cv is not a number: {value!r}") from None
    return ServiceTime(mean, distribution, cv)
