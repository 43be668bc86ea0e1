"""The phase enum mirrors the CRD, and each transition function moves only when it should."""

from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
import yaml

from backlog_operator.api import scaletest as api
from backlog_operator.scaletest import transitions
from backlog_operator.scaletest.phases import ALLOWED, Phase, Verdict, allowed, part_of
from backlog_operator.scaletest.transitions import Observation

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _status_schema() -> dict:
    text = resources.files("backlog_operator.api").joinpath("crds/scaletests.yaml").read_text()
    crd = yaml.safe_load(text)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]


def test_phase_and_verdict_enums_mirror_the_crd() -> None:
    props = _status_schema()["properties"]
    assert props["phase"]["enum"] == [p.value for p in Phase]
    assert props["verdict"]["enum"] == [v.value for v in Verdict]


def test_terminal_phases_go_nowhere() -> None:
    assert {p for p in Phase if p.terminal} == {Phase.SUCCEEDED, Phase.FAILED}
    assert all(not ALLOWED[p] for p in Phase if p.terminal)
    assert all(allowed(p, Phase.FAILED) for p in Phase if not p.terminal)
    assert part_of(Phase.BASELINE).value == "baseline"
    assert part_of(Phase.DRAINING).value == "load"


def _spec(**overrides: object) -> api.ScaleTestSpec:
    raw: dict = {
        "database": {"dsnSecretRef": {"name": "db"}},
        "load": {"profile": "Constant", "ratePerSecond": 5, "durationSeconds": 10},
        "drainTimeoutSeconds": 30,
    }
    raw.update(overrides)
    return api.parse_spec(raw)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_pending_goes_to_baseline_or_loading() -> None:
    obs = Observation(Phase.PENDING)
    assert transitions.decide(_spec(), obs, T0).target is Phase.LOADING
    with_baseline = _spec(baseline={"ratePerSecond": 1, "durationSeconds": 5})
    assert transitions.decide(with_baseline, obs, T0).target is Phase.BASELINE


def test_simulated_goes_straight_to_analyzing_when_supported() -> None:
    spec = _spec(mode="Simulated")
    accepted = transitions.decide(spec, Observation(Phase.PENDING, simulated_supported=True), T0)
    assert accepted.target is Phase.ANALYZING and accepted.reason == "Simulating"
    refused = transitions.decide(spec, Observation(Phase.PENDING), T0)
    assert refused.target is Phase.FAILED and refused.reason == "NotImplemented"


def test_baseline_waits_for_schedule_and_jobs_then_times_out() -> None:
    spec = _spec(baseline={"ratePerSecond": 1, "durationSeconds": 5})
    obs = Observation(
        Phase.BASELINE,
        produced=5,
        requested=5,
        finished=3,
        part_started_at=T0,
        part_duration_seconds=5,
    )
    assert transitions.decide(spec, obs, _at(4)) is None  # schedule still running
    assert transitions.decide(spec, obs, _at(6)) is None  # jobs unfinished
    behind = Observation(
        Phase.BASELINE,
        produced=4,
        requested=5,
        finished=4,
        part_started_at=T0,
        part_duration_seconds=5,
    )
    assert transitions.decide(spec, behind, _at(6)) is None  # producers behind
    done = Observation(
        Phase.BASELINE,
        produced=5,
        requested=5,
        finished=5,
        part_started_at=T0,
        part_duration_seconds=5,
    )
    assert transitions.decide(spec, done, _at(6)).reason == "BaselineMeasured"
    timed_out = transitions.decide(spec, obs, _at(35))
    assert timed_out.target is Phase.LOADING and timed_out.reason == "BaselineDrainTimedOut"


def test_loading_ends_when_time_is_up_and_every_job_exists() -> None:
    spec = _spec()
    assert transitions.decide(spec, Observation(Phase.LOADING), _at(100)) is None
    running = Observation(
        Phase.LOADING, produced=20, requested=50, part_started_at=T0, part_duration_seconds=10
    )
    assert transitions.decide(spec, running, _at(5)) is None
    assert transitions.decide(spec, running, _at(11)) is None  # catching up after a restart
    caught_up = Observation(
        Phase.LOADING, produced=50, requested=50, part_started_at=T0, part_duration_seconds=10
    )
    assert transitions.decide(spec, caught_up, _at(9.9)) is None
    moved = transitions.decide(spec, caught_up, _at(10))
    assert moved.target is Phase.DRAINING and "50 jobs" in moved.message


def test_draining_ends_when_all_finished_or_timed_out() -> None:
    spec = _spec()
    draining = Observation(Phase.DRAINING, produced=50, finished=49, drain_started_at=T0)
    assert transitions.decide(spec, draining, _at(29)) is None
    timed_out = transitions.decide(spec, draining, _at(30))
    assert timed_out.reason == "DrainTimedOut" and "1 of 50" in timed_out.message
    drained = Observation(Phase.DRAINING, produced=50, finished=50, drain_started_at=T0)
    assert transitions.decide(spec, drained, _at(1)).reason == "Drained"


def test_analyzing_follows_the_verdict() -> None:
    spec = _spec()
    assert transitions.decide(spec, Observation(Phase.ANALYZING), T0) is None
    passed = Observation(Phase.ANALYZING, verdict=Verdict.PASSED)
    assert transitions.decide(spec, passed, T0).target is Phase.SUCCEEDED
    failed = Observation(
        Phase.ANALYZING,
        verdict=Verdict.FAILED,
        verdict_message="p95EndToEndSeconds: observed 3, target 0.001",
    )
    moved = transitions.decide(spec, failed, T0)
    assert moved.target is Phase.FAILED and "p95EndToEndSeconds" in moved.message


@pytest.mark.parametrize("phase", [p for p in Phase if not p.terminal])
def test_a_fatal_error_fails_any_running_phase(phase: Phase) -> None:
    obs = Observation(phase, fatal_error=("SecretNotFound", "secret upload-db not found"))
    moved = transitions.decide(_spec(), obs, T0)
    assert moved.target is Phase.FAILED and moved.reason == "SecretNotFound"


@pytest.mark.parametrize("phase", [Phase.SUCCEEDED, Phase.FAILED])
def test_terminal_phases_stay(phase: Phase) -> None:
    assert transitions.decide(_spec(), Observation(phase, fatal_error=("X", "y")), T0) is None
