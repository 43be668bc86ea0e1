"""Pure arithmetic from per-stage rows to rates, and from stages to one scaler's Signals.

No I/O and no clock: hub.py passes the rows, the time and the memory it keeps between
ticks, and stores the memory returned. Rates count stage executions per second:
- completions of S: stage_done events of S in the window;
- arrivals to S: stage_done events of the stage before S (the job moved on into S);
  the first stage has no stage before it, so its arrivals come from conservation:
  departures (completions + failures) plus the growth of its active rows since the
  oldest sample still inside the window;
- service time of S: mean recorded `seconds` of S's stage_done events; when the window
  saw none, the last value measured (service times drift slowly, and an idle stage
  waking up should not look like an unknown one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from backlog_operator import pipeline
from backlog_operator.policy.types import Signals
from backlog_operator.sources.queries import StageRow


@dataclass(frozen=True, slots=True)
class StageReading:
    """One stage's backlog and flow, as delivered in `hub.Reading.stages`."""

    stage: str
    ready: int
    in_flight: int
    oldest_ready_s: float | None
    arrival_rate_per_s: float | None
    completion_rate_per_s: float
    service_time_s: float | None


@dataclass(frozen=True, slots=True)
class ActiveSample:
    """Active rows of a stage at a time: the memory behind conservation-based arrivals."""

    at: float
    stage: str
    active: int


@dataclass(frozen=True, slots=True)
class FlowMemory:
    """What the hub remembers between ticks of one (schema, table)."""

    samples: tuple[ActiveSample, ...] = ()
    service_times: tuple[tuple[str, float], ...] = ()


def query_stages(stages: Iterable[str]) -> tuple[str, ...]:
    """`stages` plus the stage before each (its completions are their arrivals), sorted."""
    wanted = set(stages)
    for stage in list(wanted):
        index = pipeline.STAGES.index(stage)
        if index > 0:
            wanted.add(pipeline.STAGES[index - 1])
    return tuple(sorted(wanted, key=pipeline.STAGES.index))


def _first_stage_arrivals(
    row: StageRow, at: float, window_s: float, samples: tuple[ActiveSample, ...]
) -> float:
    departures = (row.completions + row.failures) / window_s
    past = [s for s in samples if s.stage == row.stage and s.at < at]
    if not past:
        return departures  # no history yet: assume a steady state
    oldest = min(past, key=lambda s: s.at)
    growth = (row.active - oldest.active) / (at - oldest.at)
    return max(0.0, departures + growth)


def stage_readings(
    rows: Mapping[str, StageRow], at: float, window_s: float, memory: FlowMemory
) -> tuple[dict[str, StageReading], FlowMemory]:
    """Rates for every stage in `rows`, and the memory to pass to the next call."""
    services = dict(memory.service_times)
    readings: dict[str, StageReading] = {}
    for stage, row in rows.items():
        index = pipeline.STAGES.index(stage)
        arrivals: float | None
        if index == 0:
            arrivals = _first_stage_arrivals(row, at, window_s, memory.samples)
        else:
            before = rows.get(pipeline.STAGES[index - 1])
            arrivals = None if before is None else before.completions / window_s
        if row.service_time_s is not None:
            services[stage] = row.service_time_s
        readings[stage] = StageReading(
            stage=stage,
            ready=row.ready,
            in_flight=row.in_flight,
            oldest_ready_s=row.oldest_ready_s if row.ready else None,
            arrival_rate_per_s=arrivals,
            completion_rate_per_s=row.completions / window_s,
            service_time_s=services.get(stage),
        )
    first = pipeline.STAGES[0]
    kept = tuple(s for s in memory.samples if s.at > at - window_s)
    if first in rows:
        kept += (ActiveSample(at, first, rows[first].active),)
    return readings, FlowMemory(samples=kept, service_times=tuple(sorted(services.items())))


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def signals_for(
    readings: Mapping[str, StageReading],
    stages: Iterable[str],
    upstream_stages: Iterable[str] = (),
) -> Signals:
    """One scaler's Signals: sums over its stages, the oldest age, a weighted service time.

    The service time is the mean per stage execution, weighted by completions (so
    arrival rate x service time is the offered load); with no completions in the window,
    the plain mean of the last known values.
    """
    mine = [readings[s] for s in stages]
    upstream = [readings[s] for s in upstream_stages]
    ages = [r.oldest_ready_s for r in mine if r.oldest_ready_s is not None]
    timed = [r for r in mine if r.service_time_s is not None]
    weight = sum(r.completion_rate_per_s for r in timed)
    service: float | None = None
    if timed and weight > 0:
        service = sum(r.completion_rate_per_s * (r.service_time_s or 0.0) for r in timed) / weight
    elif timed:
        service = sum(r.service_time_s or 0.0 for r in timed) / len(timed)
    return Signals(
        ready=sum(r.ready for r in mine),
        in_flight=sum(r.in_flight for r in mine),
        oldest_ready_seconds=max(ages) if ages else None,
        arrival_rate_per_s=_sum(r.arrival_rate_per_s for r in mine),
        completion_rate_per_s=sum(r.completion_rate_per_s for r in mine),
        service_time_s=service,
        upstream_arrival_rate_per_s=_sum(r.arrival_rate_per_s for r in upstream)
        if upstream
        else None,
        ok=True,
    )
