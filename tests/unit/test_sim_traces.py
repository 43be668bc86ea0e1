"""Trace parsing (errors name the line), arrival spreading, service-time syntax and draws."""

from __future__ import annotations

import random
import statistics

import pytest

from backlog_operator.sim import traces
from backlog_operator.sim.service import Distribution, ServiceTime, parse_service_time


def test_parse_trace_reads_rows_in_order() -> None:
    trace = traces.parse_trace("second,arrivals\n0,3\n1,0\n2,5\n\n")
    assert trace.arrivals == (3, 0, 5)
    assert trace.total == 8
    assert trace.seconds == 3


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "header"),
        ("sec,arr\n0,1\n", 1, "header"),
        ("second,arrivals\n0,1\n1,x\n", 3, "arrivals is not an integer"),
        ("second,arrivals\n0,1\n2,1\n", 3, "expected second 1"),
        ("second,arrivals\n0,1\n1,-2\n", 3, ">= 0"),
        ("second,arrivals\n0,1,2\n", 2, "2 fields"),
        ("second,arrivals\n", 2, "no rows"),
    ],
)
def test_parse_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(traces.TraceError) as caught:
        traces.parse_trace(text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_arrivals_are_spread_evenly_within_each_second() -> None:
    times = list(traces.arrival_times([2, 0, 1]))
    assert times == [0.25, 0.75, 2.5]


def test_synthetic_day_keeps_the_exact_total() -> None:
    day = traces.synthetic_diurnal(seconds=1000, peak_per_s=20.0, floor_per_s=2.0)
    assert day.seconds == 1000
    assert abs(day.total - 11_000) <= 1  # mean of the raised cosine is (2 + 20) / 2
    assert max(day.arrivals) >= 19


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5", ServiceTime(1.5, Distribution.EXPONENTIAL)),
        ("2:constant", ServiceTime(2.0, Distribution.CONSTANT)),
        ("1.0:LogNormal:cv=0.5", ServiceTime(1.0, Distribution.LOGNORMAL, 0.5)),
    ],
)
def test_service_time_syntax(text: str, expected: ServiceTime) -> None:
    assert parse_service_time(text) == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "0", "-1", "1:Weibull", "1:Exponential:cv=2", "1:LogNormal:sd=1", "1:a:b:c"]
)
def test_bad_service_times_are_one_line_value_errors(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_service_time(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("service", "cv"),
    [
        (ServiceTime(2.0, Distribution.CONSTANT), 0.0),
        (ServiceTime(2.0, Distribution.EXPONENTIAL), 1.0),
        (ServiceTime(2.0, Distribution.LOGNORMAL, 0.5), 0.5),
    ],
)
def test_draws_have_the_mean_and_spread_asked_for(service: ServiceTime, cv: float) -> None:
    draw = service.sampler(random.Random(7))
    values = [draw() for _ in range(40_000)]
    mean = statistics.fmean(values)
    assert mean == pytest.approx(2.0, rel=0.03)
    assert statistics.pstdev(values) / mean == pytest.approx(cv, abs=0.04)


@pytest.mark.parametrize("distribution", list(Distribution))
def test_bulk_draws_match_one_by_one_draws(distribution: Distribution) -> None:
    service = ServiceTime(1.5, distribution, 0.7 if distribution is Distribution.LOGNORMAL else 1.0)
    bulk = service.draws(random.Random(9), 200)
    draw = service.sampler(random.Random(9))
    assert list(bulk) == pytest.approx([draw() for _ in range(200)], rel=1e-12)
