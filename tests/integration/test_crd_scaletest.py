"""The ScaleTest CRD on a real kube-apiserver: invalid specs are refused naming the field,
defaults are applied, the spec is immutable, and the printer columns show the summary."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.fixtures import crds

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "backlog.dev", "v1alpha1", "scaletests"

VALID: dict[str, Any] = {
    "database": {"dsnSecretRef": {"name": "upload-db"}},
    "scalers": ["parse-workers"],
    "load": {
        "profile": "Spike",
        "ratePerSecond": 5,
        "peakRatePerSecond": 50,
        "spikeDurationSeconds": 10,
        "durationSeconds": 30,
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """VALID with the dotted `path` set to `value` (None deletes it)."""
    return crds.spec_with(VALID, path, value)


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("trace-needs-trace", _with("load", {"profile": "Trace"}), "spec.load.trace"),
    ("spike-needs-peak", _with("load.peakRatePerSecond", None), "spec.load.peakRatePerSecond"),
    (
        "ramp-needs-peak",
        _with("load", {"profile": "Ramp", "ratePerSecond": 1}),
        "spec.load.peakRatePerSecond",
    ),
    ("step-needs-steps", _with("load", {"profile": "Step"}), "spec.load.steps"),
    ("constant-needs-rate", _with("load", {"profile": "Constant"}), "spec.load.ratePerSecond"),
    ("producers-zero", _with("load.producers", 0), "spec.load.producers"),
    ("producers-too-many", _with("load.producers", 101), "spec.load.producers"),
    ("max-jobs-zero", _with("load.maxJobs", 0), "spec.load.maxJobs"),
    ("max-jobs-huge", _with("load.maxJobs", 10**9), "spec.load.maxJobs"),
    ("mode-unknown", _with("mode", "Dry"), "spec.mode"),
    ("profile-unknown", _with("load.profile", "Wave"), "spec.load.profile"),
    ("cleanup-unknown", _with("cleanup", "Sometimes"), "spec.cleanup"),
    (
        "distribution-unknown",
        _with(
            "workload", {"serviceTime": {"default": {"meanSeconds": 1, "distribution": "Gamma"}}}
        ),
        "spec.workload.serviceTime.default.distribution",
    ),
    (
        "failure-rate-above-one",
        _with("workload", {"failureRate": 1.5}),
        "spec.workload.failureRate",
    ),
    (
        "service-time-unknown-stage",
        _with("workload", {"serviceTime": {"stages": {"painting": {"meanSeconds": 1}}}}),
        "spec.workload.serviceTime.stages",
    ),
    ("database-missing", _with("database", None), "spec.database"),
    ("from-baseline-needs-baseline", _with("load.fromBaseline", True), "spec.load.fromBaseline"),
    (
        "chaos-empty-selector",
        _with("chaos", {"deletePodsEverySeconds": 5, "selector": {}}),
        "spec.chaos.selector",
    ),
    (
        "chaos-period-zero",
        _with("chaos", {"deletePodsEverySeconds": 0, "selector": {"matchLabels": {"a": "b"}}}),
        "spec.chaos.deletePodsEverySeconds",
    ),
    ("sample-interval-zero", _with("sampleIntervalSeconds", 0), "spec.sampleIntervalSeconds"),
    ("drain-timeout-zero", _with("drainTimeoutSeconds", 0), "spec.drainTimeoutSeconds"),
    (
        "spike-longer-than-load",
        _with("load.spikeDurationSeconds", 31),
        "spec.load.spikeDurationSeconds",
    ),
    ("peak-below-rate", _with("load.peakRatePerSecond", 1), "spec.load.peakRatePerSecond"),
    ("load-factor-zero", _with("load.loadFactor", 0), "spec.load.loadFactor"),
    ("negative-rate", _with("load.ratePerSecond", -1), "spec.load.ratePerSecond"),
    ("scaler-bad-name", _with("scalers", ["Parse_Workers"]), "spec.scalers[0]"),
    (
        "duplicate-step-times",
        _with(
            "load",
            {
                "profile": "Step",
                "steps": [
                    {"afterSeconds": 0, "ratePerSecond": 1},
                    {"afterSeconds": 0, "ratePerSecond": 2},
                ],
            },
        ),
        "spec.load.steps",
    ),
    (
        "step-after-the-end",
        _with(
            "load",
            {
                "profile": "Step",
                "durationSeconds": 10,
                "steps": [{"afterSeconds": 10, "ratePerSecond": 1}],
            },
        ),
        "spec.load.steps",
    ),
    (
        "baseline-needs-rate",
        _with("baseline", {"durationSeconds": 5}),
        "spec.baseline.ratePerSecond",
    ),
]


def test_at_least_fifteen_invalid_specs_are_listed() -> None:
    assert len(INVALID) >= 15
    assert len({name for name, _, _ in INVALID}) == len(INVALID)


@pytest.mark.parametrize(("name", "spec", "field"), INVALID, ids=[n for n, _, _ in INVALID])
def test_invalid_spec_is_refused_naming_the_field(
    custom_objects: client.CustomObjectsApi,
    namespace: str,
    name: str,
    spec: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(ApiException) as refused:
        custom_objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, crds.custom_object("ScaleTest", name, spec)
        )
    assert refused.value.status == 422, refused.value.body
    status = json.loads(refused.value.body)
    fields = [cause.get("field", "") for cause in status["details"].get("causes", [])]
    assert field in fields, (fields, status["message"])
    assert field in status["message"]


def test_valid_spec_is_accepted_with_defaults(
    custom_objects: client.CustomObjectsApi, namespace: str
) -> None:
    created = custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, crds.custom_object("ScaleTest", "ok", VALID)
    )
    spec = created["spec"]
    assert spec["mode"] == "Live"
    assert spec["cleanup"] == "OnSuccess"
    assert spec["database"]["dsnSecretRef"]["key"] == "dsn"
    assert spec["load"]["producers"] == 10
    assert spec["load"]["loadFactor"] == 1.0
    assert spec["drainTimeoutSeconds"] == 600
    assert spec["sampleIntervalSeconds"] == 1


def test_spec_is_immutable_after_creation(
    custom_objects: client.CustomObjectsApi, namespace: str
) -> None:
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, crds.custom_object("ScaleTest", "frozen", VALID)
    )
    with pytest.raises(ApiException) as refused:
        custom_objects.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "frozen", {"spec": {"load": {"producers": 3}}}
        )
    assert refused.value.status == 422
    assert "spec is immutable" in refused.value.body
    # Metadata (labels, finalizers) stays editable: kopf needs it.
    custom_objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "frozen", {"metadata": {"labels": {"team": "a"}}}
    )


def test_status_is_a_subresource_with_declared_fields_and_phase_enum(
    custom_objects: client.CustomObjectsApi, namespace: str
) -> None:
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, crds.custom_object("ScaleTest", "st", VALID)
    )
    status = {
        "phase": "Succeeded",
        "verdict": "Passed",
        "runId": "r1",
        "progress": {"jobsCreated": 120, "jobsDone": 120, "jobsDeadletter": 0},
        "results": {
            "throughputPerSecond": 11.5,
            "producerRatePerSecond": 12.0,
            "latency": {
                "endToEnd": {"p50": 1.0, "p95": 2.5, "p99": 3.0},
                "stages": {"parsing": {"p50": 0.1, "p95": 0.2, "p99": 0.3}},
            },
            "queueWaitP95Seconds": 1.2,
            "bottleneckStage": "parsing",
            "timeToFirstScaleSeconds": 3.0,
            "drainSeconds": 4.0,
            "maxReplicas": {"parse-workers": 4},
            "replicaSeconds": {"parse-workers": 40.5},
            "lostJobs": 0,
            "duplicateCompletions": 0,
            "slo": [{"name": "p95EndToEndSeconds", "target": 60, "observed": 2.5, "met": True}],
        },
    }
    patched = custom_objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "st", {"status": status}
    )
    # Nothing was pruned: every field is declared in the schema.
    assert patched["status"] == status
    # A status write through the main resource is ignored (status subresource).
    custom_objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "st", {"status": {"phase": "Failed"}}
    )
    got = custom_objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "st")
    assert got["status"]["phase"] == "Succeeded"
    with pytest.raises(ApiException) as refused:
        custom_objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "st", {"status": {"phase": "Exploded"}}
        )
    assert refused.value.status == 422
    assert "status.phase" in refused.value.body

    # Printer columns, as `kubectl get st` asks for them (server-side table).
    api_client = custom_objects.api_client
    method, url, headers, _, _ = api_client.param_serialize(
        method="GET",
        resource_path=f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/st",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = json.loads(api_client.call_api(method, url, header_params=headers).read())
    names = [c["name"] for c in response["columnDefinitions"]]
    assert names == ["Name", "Phase", "Profile", "Jobs", "Throughput", "P95", "Verdict", "Age"]
    cells = response["rows"][0]["cells"]
    assert cells[1:7] == ["Succeeded", "Spike", 120, 11.5, 2.5, "Passed"]
