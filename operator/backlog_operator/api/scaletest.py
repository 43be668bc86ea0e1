"""The ScaleTest spec as typed, frozen values: parsing only, no I/O.

`parse_spec(body["spec"])` turns the (API-server-defaulted) spec mapping into a
`ScaleTestSpec`. Defaults are repeated here so that a spec that never went
through the API server (unit tests, the simulator, `backlog-operator simulate`)
parses the same way; tests/unit/test_scaletest_spec.py pins them against the CRD
(api/crds/scaletests.yaml). Called by scaletest/handlers.py and the simulator.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_DSN_KEY = "dsn"
DEFAULT_SCHEMA = "upload_pipeline"
DEFAULT_BASELINE_SECONDS = 60
DEFAULT_LOAD_FACTOR = 1.0
DEFAULT_SPIKE_SECONDS = 60
DEFAULT_LOAD_SECONDS = 60
DEFAULT_PRODUCERS = 10
DEFAULT_MAX_JOBS = 100_000
DEFAULT_FAILURE_RATE = 0.0
DEFAULT_PODS_PER_ROUND = 1
DEFAULT_DRAIN_TIMEOUT_SECONDS = 600
DEFAULT_SAMPLE_INTERVAL_SECONDS = 1


class SpecError(ValueError):
    """The spec cannot be run (the CRD refuses most of these; this catches the rest)."""


class Mode(enum.StrEnum):
    LIVE = "Live"
    SIMULATED = "Simulated"


class Profile(enum.StrEnum):
    CONSTANT = "Constant"
    STEP = "Step"
    RAMP = "Ramp"
    SPIKE = "Spike"
    TRACE = "Trace"


class Cleanup(enum.StrEnum):
    ON_SUCCESS = "OnSuccess"
    ALWAYS = "Always"
    NEVER = "Never"


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str = DEFAULT_DSN_KEY


@dataclass(frozen=True)
class ConfigMapRef:
    name: str
    key: str


@dataclass(frozen=True)
class Baseline:
    rate_per_second: float
    duration_seconds: int = DEFAULT_BASELINE_SECONDS


@dataclass(frozen=True)
class Step:
    after_seconds: int
    rate_per_second: float


@dataclass(frozen=True)
class Load:
    profile: Profile
    rate_per_second: float | None = None
    load_factor: float = DEFAULT_LOAD_FACTOR
    from_baseline: bool = False
    peak_rate_per_second: float | None = None
    spike_start_seconds: int | None = None
    spike_duration_seconds: int = DEFAULT_SPIKE_SECONDS
    steps: tuple[Step, ...] = ()
    duration_seconds: int = DEFAULT_LOAD_SECONDS
    trace: ConfigMapRef | None = None
    producers: int = DEFAULT_PRODUCERS
    max_jobs: int = DEFAULT_MAX_JOBS


@dataclass(frozen=True)
class Chaos:
    delete_pods_every_seconds: int
    selector: Mapping[str, Any]
    pods_per_round: int = DEFAULT_PODS_PER_ROUND


@dataclass(frozen=True)
class Slo:
    """Every field that is set becomes one SLO verdict; None means "not asked"."""

    p95_end_to_end_seconds: float | None = None
    p95_queue_wait_seconds: float | None = None
    max_drain_seconds: float | None = None
    max_lost_jobs: int | None = None
    max_duplicate_completions: int | None = None
    min_throughput_per_second: float | None = None


@dataclass(frozen=True)
class ScaleTestSpec:
    dsn_secret: SecretRef
    load: Load
    schema: str = DEFAULT_SCHEMA
    mode: Mode = Mode.LIVE
    scalers: tuple[str, ...] = ()
    baseline: Baseline | None = None
    # The `workload` mapping goes verbatim into each job's payload (the worker's contract).
    workload: Mapping[str, Any] = field(default_factory=dict)
    chaos: Chaos | None = None
    slo: Slo = field(default_factory=Slo)
    drain_timeout_seconds: int = DEFAULT_DRAIN_TIMEOUT_SECONDS
    sample_interval_seconds: int = DEFAULT_SAMPLE_INTERVAL_SECONDS
    cleanup: Cleanup = Cleanup.ON_SUCCESS


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_load(raw: Mapping[str, Any]) -> Load:
    try:
        profile = Profile(raw["profile"])
    except (KeyError, ValueError) as error:
        raise SpecError(f"spec.load.profile: {error}") from None
    trace_raw = raw.get("trace")
    trace = None
    if trace_raw is not None:
        ref = trace_raw["configMapRef"]
        trace = ConfigMapRef(name=ref["name"], key=ref["key"])
    steps = tuple(
        Step(int(s["afterSeconds"]), float(s["ratePerSecond"]))
        for s in sorted(raw.get("steps") or (), key=lambda s: int(s["afterSeconds"]))
    )
    load = Load(
        profile=profile,
        rate_per_second=_opt_float(raw.get("ratePerSecond")),
        load_factor=float(raw.get("loadFactor", DEFAULT_LOAD_FACTOR)),
        from_baseline=bool(raw.get("fromBaseline", False)),
        peak_rate_per_second=_opt_float(raw.get("peakRatePerSecond")),
        spike_start_seconds=_opt_int(raw.get("spikeStartSeconds")),
        spike_duration_seconds=int(raw.get("spikeDurationSeconds", DEFAULT_SPIKE_SECONDS)),
        steps=steps,
        duration_seconds=int(raw.get("durationSeconds", DEFAULT_LOAD_SECONDS)),
        trace=trace,
        producers=int(raw.get("producers", DEFAULT_PRODUCERS)),
        max_jobs=int(raw.get("maxJobs", DEFAULT_MAX_JOBS)),
    )
    _check_load(load)
    return load


def _check_load(load: Load) -> None:
    # The CRD's CEL rules say the same; repeated for specs that skip the API server.
    if load.profile is Profile.TRACE and load.trace is None:
        raise SpecError("spec.load.trace is required when spec.load.profile is Trace")
    if load.profile in (Profile.SPIKE, Profile.RAMP) and load.peak_rate_per_second is None:
        raise SpecError(f"spec.load.peakRatePerSecond is required for profile {load.profile}")
    if load.profile is Profile.STEP and not load.steps:
        raise SpecError("spec.load.steps is required when spec.load.profile is Step")
    needs_rate = load.profile in (Profile.CONSTANT, Profile.RAMP, Profile.SPIKE)
    if needs_rate and load.rate_per_second is None and not load.from_baseline:
        raise SpecError("spec.load.ratePerSecond is required (or spec.load.fromBaseline)")
    if not 1 <= load.producers <= 100:
        raise SpecError("spec.load.producers must be between 1 and 100")


def parse_spec(raw: Mapping[str, Any]) -> ScaleTestSpec:
    """The typed spec, with the CRD's defaults filled in; SpecError names the field."""
    try:
        secret = raw["database"]["dsnSecretRef"]
        load_raw = raw["load"]
    except KeyError as error:
        raise SpecError(f"spec.{error.args[0]} is required") from None
    baseline_raw = raw.get("baseline")
    baseline = None
    if baseline_raw is not None:
        baseline = Baseline(
            rate_per_second=float(baseline_raw["ratePerSecond"]),
            duration_seconds=int(baseline_raw.get("durationSeconds", DEFAULT_BASELINE_SECONDS)),
        )
    load = parse_load(load_raw)
    if load.from_baseline and baseline is None:
        raise SpecError("spec.load.fromBaseline requires spec.baseline")
    chaos_raw = raw.get("chaos")
    chaos = None
    if chaos_raw is not None:
        chaos = Chaos(
            delete_pods_every_seconds=int(chaos_raw["deletePodsEverySeconds"]),
            selector=dict(chaos_raw["selector"]),
            pods_per_round=int(chaos_raw.get("podsPerRound", DEFAULT_PODS_PER_ROUND)),
        )
    slo_raw = raw.get("slo") or {}
    slo = Slo(
        p95_end_to_end_seconds=_opt_float(slo_raw.get("p95EndToEndSeconds")),
        p95_queue_wait_seconds=_opt_float(slo_raw.get("p95QueueWaitSeconds")),
        max_drain_seconds=_opt_float(slo_raw.get("maxDrainSeconds")),
        max_lost_jobs=_opt_int(slo_raw.get("maxLostJobs")),
        max_duplicate_completions=_opt_int(slo_raw.get("maxDuplicateCompletions")),
        min_throughput_per_second=_opt_float(slo_raw.get("minThroughputPerSecond")),
    )
    return ScaleTestSpec(
        dsn_secret=SecretRef(name=secret["name"], key=secret.get("key", DEFAULT_DSN_KEY)),
        schema=raw.get("database", {}).get("schema", DEFAULT_SCHEMA),
        load=load,
        mode=Mode(raw.get("mode", Mode.LIVE)),
        scalers=tuple(raw.get("scalers") or ()),
        baseline=baseline,
        workload=dict(raw.get("workload") or {}),
        chaos=chaos,
        slo=slo,
        drain_timeout_seconds=int(raw.get("drainTimeoutSeconds", DEFAULT_DRAIN_TIMEOUT_SECONDS)),
        sample_interval_seconds=int(
            raw.get("sampleIntervalSeconds", DEFAULT_SAMPLE_INTERVAL_SECONDS)
        ),
        cleanup=Cleanup(raw.get("cleanup", Cleanup.ON_SUCCESS)),
    )
