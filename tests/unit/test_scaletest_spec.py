"""ScaleTest spec parsing: defaults pinned against the CRD, and the rules CEL also enforces."""

from importlib import resources
from typing import Any

import pytest
import yaml

from backlog_operator.api import scaletest as api


def _crd_spec_schema() -> dict[str, Any]:
    text = resources.files("backlog_operator.api").joinpath("crds/scaletests.yaml").read_text()
    crd = yaml.safe_load(text)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


MINIMAL = {
    "database": {"dsnSecretRef": {"name": "db"}},
    "load": {"profile": "Constant", "ratePerSecond": 5},
}


def test_crd_defaults_equal_the_parser_defaults() -> None:
    props = _crd_spec_schema()["properties"]
    load = props["load"]["properties"]
    parsed = api.parse_spec(MINIMAL)
    assert (
        props["database"]["properties"]["dsnSecretRef"]["properties"]["key"]["default"]
        == parsed.dsn_secret.key
    )
    assert props["database"]["properties"]["schema"]["default"] == parsed.schema
    assert props["mode"]["default"] == parsed.mode
    assert props["cleanup"]["default"] == parsed.cleanup
    assert props["drainTimeoutSeconds"]["default"] == parsed.drain_timeout_seconds
    assert props["sampleIntervalSeconds"]["default"] == parsed.sample_interval_seconds
    assert (
        props["baseline"]["properties"]["durationSeconds"]["default"]
        == api.DEFAULT_BASELINE_SECONDS
    )
    assert load["loadFactor"]["default"] == parsed.load.load_factor
    assert load["fromBaseline"]["default"] == parsed.load.from_baseline
    assert load["spikeDurationSeconds"]["default"] == parsed.load.spike_duration_seconds
    assert load["durationSeconds"]["default"] == parsed.load.duration_seconds
    assert load["producers"]["default"] == parsed.load.producers
    assert load["maxJobs"]["default"] == parsed.load.max_jobs
    assert props["chaos"]["properties"]["podsPerRound"]["default"] == api.DEFAULT_PODS_PER_ROUND
    workload = props["workload"]["properties"]
    assert workload["failureRate"]["default"] == api.DEFAULT_FAILURE_RATE
    # No defaults inside a service time: stage entries inherit from `default` (the worker's rule).
    entry = workload["serviceTime"]["properties"]["default"]["properties"]
    assert "default" not in entry["distribution"] and "default" not in entry["cv"]
    assert entry["distribution"]["enum"] == ["Constant", "Exponential", "LogNormal"]


def test_crd_enums_equal_the_python_enums() -> None:
    props = _crd_spec_schema()["properties"]
    assert props["mode"]["enum"] == [m.value for m in api.Mode]
    assert props["load"]["properties"]["profile"]["enum"] == [p.value for p in api.Profile]
    assert props["cleanup"]["enum"] == [c.value for c in api.Cleanup]


def test_full_spec_parses_every_field() -> None:
    spec = api.parse_spec(
        {
            "database": {"dsnSecretRef": {"name": "db", "key": "url"}, "schema": "pipe"},
            "mode": "Simulated",
            "scalers": ["parse-workers", "chunk-workers"],
            "baseline": {"durationSeconds": 10, "ratePerSecond": 2},
            "load": {
                "profile": "Step",
                "steps": [
                    {"afterSeconds": 5, "ratePerSecond": 9},
                    {"afterSeconds": 0, "ratePerSecond": 3},
                ],
                "loadFactor": 2,
                "durationSeconds": 20,
                "producers": 3,
                "maxJobs": 50,
            },
            "workload": {"failureRate": 0.1},
            "chaos": {"deletePodsEverySeconds": 7, "selector": {"matchLabels": {"app": "x"}}},
            "slo": {"p95EndToEndSeconds": 3, "maxLostJobs": 0},
            "cleanup": "Never",
        }
    )
    assert spec.dsn_secret == api.SecretRef("db", "url")
    assert spec.schema == "pipe"
    assert spec.mode is api.Mode.SIMULATED
    assert spec.scalers == ("parse-workers", "chunk-workers")
    assert spec.baseline == api.Baseline(2.0, 10)
    assert spec.load.steps == (api.Step(0, 3.0), api.Step(5, 9.0))  # sorted by time
    assert spec.load.producers == 3 and spec.load.max_jobs == 50
    assert spec.workload == {"failureRate": 0.1}
    assert spec.chaos is not None and spec.chaos.pods_per_round == 1
    assert spec.slo.p95_end_to_end_seconds == 3.0 and spec.slo.max_lost_jobs == 0
    assert spec.slo.p95_queue_wait_seconds is None
    assert spec.cleanup is api.Cleanup.NEVER


@pytest.mark.parametrize(
    ("load", "field"),
    [
        ({"profile": "Trace"}, "trace"),
        ({"profile": "Spike", "ratePerSecond": 1}, "peakRatePerSecond"),
        ({"profile": "Ramp", "ratePerSecond": 1}, "peakRatePerSecond"),
        ({"profile": "Step"}, "steps"),
        ({"profile": "Constant"}, "ratePerSecond"),
        ({"profile": "Bogus"}, "profile"),
        ({"profile": "Constant", "ratePerSecond": 1, "producers": 0}, "producers"),
    ],
)
def test_invalid_load_names_the_field(load: dict[str, Any], field: str) -> None:
    with pytest.raises(api.SpecError, match=field):
        api.parse_spec({**MINIMAL, "load": load})


def test_from_baseline_needs_a_baseline() -> None:
    with pytest.raises(api.SpecError, match="baseline"):
        api.parse_spec({**MINIMAL, "load": {"profile": "Constant", "fromBaseline": True}})
