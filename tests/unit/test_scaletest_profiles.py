"""Load profiles -> per-second schedules, trace CSV parsing, and the producers' shares."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backlog_operator.api.scaletest import Load, Profile, SpecError, Step
from backlog_operator.scaletest import profiles

TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces"


def test_constant_with_load_factor() -> None:
    load = Load(Profile.CONSTANT, rate_per_second=5, load_factor=2.0, duration_seconds=3)
    assert profiles.rates(load) == (10.0, 10.0, 10.0)


def test_spike_window_explicit_and_centred() -> None:
    explicit = Load(
        Profile.SPIKE,
        1,
        peak_rate_per_second=9,
        spike_start_seconds=1,
        spike_duration_seconds=2,
        duration_seconds=5,
    )
    assert profiles.rates(explicit) == (1, 9, 9, 1, 1)
    centred = Load(
        Profile.SPIKE, 1, peak_rate_per_second=9, spike_duration_seconds=2, duration_seconds=6
    )
    assert profiles.rates(centred) == (1, 1, 9, 9, 1, 1)


def test_ramp_averages_each_second() -> None:
    load = Load(Profile.RAMP, 0, peak_rate_per_second=10, duration_seconds=5)
    assert profiles.rates(load) == pytest.approx((1, 3, 5, 7, 9))


def test_step_holds_each_rate_until_the_next() -> None:
    load = Load(Profile.STEP, steps=(Step(0, 2), Step(3, 6)), duration_seconds=5, load_factor=0.5)
    assert profiles.rates(load) == (1, 1, 1, 3, 3)


def test_step_before_first_step_uses_the_base_rate_or_zero() -> None:
    load = Load(Profile.STEP, steps=(Step(2, 4),), duration_seconds=4)
    assert profiles.rates(load) == (0, 0, 4, 4)


def test_from_baseline_multiplies_the_measured_throughput() -> None:
    load = Load(Profile.CONSTANT, load_factor=2.0, from_baseline=True, duration_seconds=2)
    assert profiles.rates(load, baseline_throughput=3.5) == (7.0, 7.0)
    with pytest.raises(SpecError, match="fromBaseline"):
        profiles.rates(load)


def test_trace_is_cut_to_the_duration_and_scaled() -> None:
    load = Load(Profile.TRACE, duration_seconds=3, load_factor=2)
    assert profiles.rates(load, trace=(1, 2, 3, 4)) == (2, 4, 6)
    with pytest.raises(SpecError, match="trace"):
        profiles.rates(load)


def test_parse_trace_csv() -> None:
    assert profiles.parse_trace_csv("second,arrivals\n0,3\n1,7\n\n2,0.5\n") == (3, 7, 0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("time,count\n0,1\n", "header"),
        ("second,arrivals\n", "no rows"),
        ("second,arrivals\n1,3\n", "expected second 0"),
        ("second,arrivals\n0,x\n", "line 2"),
        ("second,arrivals\n0,-1\n", ">= 0"),
    ],
)
def test_parse_trace_csv_refuses_malformed(text: str, message: str) -> None:
    with pytest.raises(profiles.TraceError, match=message):
        profiles.parse_trace_csv(text)


@pytest.mark.parametrize("name", ["step", "spike", "ramp", "diurnal"])
def test_shared_traces_parse(name: str) -> None:
    path = TRACES / f"{name}.csv"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    arrivals = profiles.parse_trace_csv(path.read_text())
    assert len(arrivals) > 10 and all(a >= 0 for a in arrivals)


def test_schedule_due_total_and_cap() -> None:
    schedule = profiles.Schedule((2.0, 4.0, 0.0, 1.0), max_jobs=100)
    assert schedule.total == 7
    assert [schedule.due(t) for t in (0, 0.5, 1, 1.5, 2, 3, 3.5, 4, 99)] == [
        0,
        1,
        2,
        4,
        6,
        6,
        6,
        7,
        7,
    ]
    capped = profiles.Schedule((2.0, 4.0, 0.0, 1.0), max_jobs=5)
    assert capped.total == 5 and capped.due(99) == 5


def test_schedule_fractional_rates_do_not_lose_the_last_job() -> None:
    schedule = profiles.constant(0.1, 30, 1000)
    assert schedule.total == 3
    assert schedule.due(30) == 3


def test_seconds_until() -> None:
    schedule = profiles.Schedule((2.0, 0.0, 4.0), max_jobs=100)
    assert schedule.seconds_until(0) == 0.0
    assert schedule.seconds_until(1) == pytest.approx(0.5)
    assert schedule.seconds_until(3) == pytest.approx(2.25)
    assert schedule.seconds_until(7) is None


@given(
    st.lists(st.floats(min_value=0, max_value=50), min_size=1, max_size=30),
    st.lists(st.floats(min_value=0, max_value=40), min_size=2, max_size=10),
)
def test_due_is_monotonic_and_reaches_the_total(rates: list[float], times: list[float]) -> None:
    schedule = profiles.Schedule(tuple(rates), max_jobs=10_000)
    dues = [schedule.due(t) for t in sorted(times)]
    assert dues == sorted(dues)
    assert schedule.due(len(rates)) == schedule.total


@given(st.integers(0, 10_000), st.integers(1, 100))
def test_producer_shares_partition_the_due_jobs(due: int, producers: int) -> None:
    shares = [profiles.share(due, producers, i) for i in range(producers)]
    assert sum(shares) == due
    assert max(shares) - min(shares) <= 1
