"""The BacklogScaler CRD on a real kube-apiserver: defaults filled in, invalid specs refused
with a message naming the field, every status field kept, printer columns served.

The same invalid specs go through api.backlogscaler.parse_backlogscaler, so the CRD and
the parser cannot drift apart silently.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from backlog_operator.api import backlogscaler
from tests.fixtures import crds

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL, KIND = "backlog.dev", "v1alpha1", "backlogscalers", "BacklogScaler"
NS = "default"  # invalid specs are sent with dryRun, so nothing is left behind

MINIMAL: dict[str, Any] = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "parse-worker"},
    "database": {"dsnSecretRef": {"name": "upload-db"}},
    "source": {"stages": ["parsing", "parsed"]},
}

# DESIGN.md's example, every field set.
FULL: dict[str, Any] = {
    **MINIMAL,
    "database": {"dsnSecretRef": {"name": "upload-db", "key": "dsn"}},
    "source": {
        "schema": "upload_pipeline",
        "table": "upload_jobs",
        "stages": ["parsing", "parsed"],
    },
    "minReplicas": 0,
    "maxReplicas": 20,
    "pollIntervalSeconds": 5,
    "listen": True,
    "policy": {
        "type": "QueueWait",
        "targetQueueWaitSeconds": 30,
        "targetUtilization": 0.8,
        "backlogPerReplica": 10,
        "activationBacklog": 0,
        "idleCooldownSeconds": 120,
        "upstreamStages": ["chunking"],
    },
    "behavior": {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 60,
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    },
    "fallback": {"failureThreshold": 3, "behavior": "Hold", "replicas": 2},
    "drainAwareScaleIn": True,
    "paused": False,
}


def _with(path: str, value: Any, base: dict[str, Any] = MINIMAL) -> dict[str, Any]:
    """`base` with the dotted `path` set to `value` (None deletes it)."""
    return crds.spec_with(base, path, value)


def _policies(direction: str, **item: Any) -> dict[str, Any]:
    policy = {"type": "Pods", "value": 1, "periodSeconds": 15, **item}
    return _with(f"behavior.{direction}.policies", [policy])


# (id, spec, the field the API server's message must name)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("min-above-max", _with("minReplicas", 5, _with("maxReplicas", 3)), "spec.minReplicas"),
    ("min-negative", _with("minReplicas", -1), "spec.minReplicas"),
    ("max-zero", _with("maxReplicas", 0), "spec.maxReplicas"),
    ("max-too-big", _with("maxReplicas", 1001), "spec.maxReplicas"),
    ("poll-zero", _with("pollIntervalSeconds", 0), "spec.pollIntervalSeconds"),
    ("poll-too-long", _with("pollIntervalSeconds", 3601), "spec.pollIntervalSeconds"),
    ("listen-not-bool", _with("listen", "yes"), "spec.listen"),
    ("paused-not-bool", _with("paused", "true"), "spec.paused"),
    ("policy-type-unknown", _with("policy.type", "Magic"), "spec.policy.type"),
    (
        "bpr-needs-backlog",
        _with("policy.type", "BacklogPerReplica"),
        "spec.policy.backlogPerReplica",
    ),
    ("bpr-zero", _with("policy.backlogPerReplica", 0), "spec.policy.backlogPerReplica"),
    ("utilization-zero", _with("policy.targetUtilization", 0), "spec.policy.targetUtilization"),
    (
        "utilization-above-1",
        _with("policy.targetUtilization", 1.5),
        "spec.policy.targetUtilization",
    ),
    ("wait-zero", _with("policy.targetQueueWaitSeconds", 0), "spec.policy.targetQueueWaitSeconds"),
    ("activation-negative", _with("policy.activationBacklog", -1), "spec.policy.activationBacklog"),
    (
        "cooldown-negative",
        _with("policy.idleCooldownSeconds", -5),
        "spec.policy.idleCooldownSeconds",
    ),
    ("tolerance-one", _with("policy.tolerance", 1), "spec.policy.tolerance"),
    (
        "upstream-unknown",
        _with("policy.upstreamStages", ["frobnicate"]),
        "spec.policy.upstreamStages",
    ),
    (
        "upstream-overlaps",
        _with("policy.upstreamStages", ["parsing"]),
        "spec.policy.upstreamStages",
    ),
    ("stages-empty", _with("source.stages", []), "spec.source.stages"),
    ("stages-missing", _with("source.stages", None), "spec.source.stages"),
    ("stage-unknown", _with("source.stages", ["parsing", "frobnicate"]), "spec.source.stages[1]"),
    ("stage-duplicate", _with("source.stages", ["parsing", "parsing"]), "spec.source.stages[1]"),
    ("schema-uppercase", _with("source.schema", "Upload_Pipeline"), "spec.source.schema"),
    ("schema-injection", _with("source.schema", 'x"; DROP TABLE y; --'), "spec.source.schema"),
    ("schema-too-long", _with("source.schema", "s" * 64), "spec.source.schema"),
    ("table-leading-digit", _with("source.table", "1jobs"), "spec.source.table"),
    ("target-missing", _with("scaleTargetRef", None), "spec.scaleTargetRef"),
    ("target-name-missing", _with("scaleTargetRef.name", None), "spec.scaleTargetRef.name"),
    (
        "target-kind-lowercase",
        _with("scaleTargetRef.kind", "deployment"),
        "spec.scaleTargetRef.kind",
    ),
    (
        "target-apiversion-empty",
        _with("scaleTargetRef.apiVersion", ""),
        "spec.scaleTargetRef.apiVersion",
    ),
    ("database-missing", _with("database", None), "spec.database"),
    (
        "secret-name-missing",
        _with("database.dsnSecretRef.name", None),
        "spec.database.dsnSecretRef.name",
    ),
    ("secret-key-bad", _with("database.dsnSecretRef.key", "a b"), "spec.database.dsnSecretRef.key"),
    (
        "select-policy-unknown",
        _with("behavior.scaleUp.selectPolicy", "Average"),
        "spec.behavior.scaleUp.selectPolicy",
    ),
    (
        "rate-policy-type-unknown",
        _policies("scaleDown", type="Nodes"),
        "spec.behavior.scaleDown.policies[0].type",
    ),
    (
        "rate-policy-value-zero",
        _policies("scaleUp", value=0),
        "spec.behavior.scaleUp.policies[0].value",
    ),
    (
        "rate-policy-period-zero",
        _policies("scaleUp", periodSeconds=0),
        "spec.behavior.scaleUp.policies[0].periodSeconds",
    ),
    (
        "rate-policies-empty",
        _with("behavior.scaleUp.policies", []),
        "spec.behavior.scaleUp.policies",
    ),
    (
        "stabilization-too-long",
        _with("behavior.scaleDown.stabilizationWindowSeconds", 3601),
        "spec.behavior.scaleDown.stabilizationWindowSeconds",
    ),
    ("fallback-behavior-unknown", _with("fallback.behavior", "Panic"), "spec.fallback.behavior"),
    (
        "fallback-static-needs-replicas",
        _with("fallback.behavior", "Static"),
        "spec.fallback.replicas",
    ),
    ("fallback-replicas-zero", _with("fallback.replicas", 0), "spec.fallback.replicas"),
    (
        "fallback-replicas-above-max",
        _with("fallback.replicas", 11, _with("maxReplicas", 10)),
        "spec.fallback.replicas",
    ),
    (
        "fallback-threshold-zero",
        _with("fallback.failureThreshold", 0),
        "spec.fallback.failureThreshold",
    ),
]


def _get(obj: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        obj = obj[key]
    return obj


def test_minimal_spec_gets_every_default(custom_objects: client.CustomObjectsApi) -> None:
    created: Any = custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, crds.custom_object(KIND, "minimal", MINIMAL), dry_run="All"
    )
    spec = created["spec"]
    # The CRD's defaults are the parser's (api/backlogscaler.py SCHEMA_DEFAULTS), one by one.
    for path, expected in backlogscaler.SCHEMA_DEFAULTS.items():
        assert _get(spec, path) == expected, path
    assert "backlogPerReplica" not in spec["policy"]  # required only for BacklogPerReplica
    assert "replicas" not in spec["fallback"]  # required only for Static
    # And what the server stored parses to the same config as the bare spec.
    assert backlogscaler.parse_backlogscaler(spec) == backlogscaler.parse_backlogscaler(MINIMAL)


def test_design_example_is_accepted_unchanged(custom_objects: client.CustomObjectsApi) -> None:
    created: Any = custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, crds.custom_object(KIND, "full", FULL), dry_run="All"
    )
    spec = created["spec"]
    assert {k: spec[k] for k in FULL} == {**FULL, "policy": {**FULL["policy"], "tolerance": 0.1}}


@pytest.mark.parametrize(("spec", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_spec_is_refused_naming_the_field(
    custom_objects: client.CustomObjectsApi, spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as refused:
        custom_objects.create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, crds.custom_object(KIND, "invalid", spec), dry_run="All"
        )
    assert refused.value.status == 422, refused.value.body
    assert field in str(refused.value.body), refused.value.body
    # The parser refuses it too, naming the same field.
    with pytest.raises(ValueError, match=field.split("[")[0].replace(".", r"\.")):
        backlogscaler.parse_backlogscaler(spec)


def test_cel_rule_blocks_an_update_too(custom_objects: client.CustomObjectsApi) -> None:
    name = f"upd-{uuid.uuid4().hex[:8]}"
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, crds.custom_object(KIND, name, MINIMAL)
    )
    try:
        with pytest.raises(ApiException) as refused:
            custom_objects.patch_namespaced_custom_object(
                GROUP, VERSION, NS, PLURAL, name, {"spec": {"maxReplicas": 1, "minReplicas": 2}}
            )
        assert refused.value.status == 422
        assert "spec.minReplicas" in str(refused.value.body)
    finally:
        custom_objects.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)


STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "desiredReplicas": 4,
    "currentReplicas": 3,
    "lastScaleTime": "2026-01-01T00:00:00Z",
    "lastReadingTime": "2026-01-01T00:00:05Z",
    "backlog": {
        "ready": 120,
        "inFlight": 8,
        "oldestReadySeconds": 14.5,
        "stages": [{"stage": "parsing", "ready": 100, "inFlight": 8, "oldestReadySeconds": 14.5}],
    },
    "arrivalRatePerSecond": 6.1,
    "upstreamArrivalRatePerSecond": 7.5,
    "completionRatePerSecond": 5.8,
    "serviceTimeSeconds": 0.9,
    "consecutiveFailures": 0,
    "fallback": False,
    "lastError": "",
    "lastScaleReason": "ScaleUp",
    "conditions": [
        {
            "type": "Active",
            "status": "True",
            "reason": "Backlog",
            "message": "120 ready",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": 1,
        }
    ],
}


def test_status_keeps_every_field_and_columns_show_it(
    custom_objects: client.CustomObjectsApi,
) -> None:
    name = f"st-{uuid.uuid4().hex[:8]}"
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, crds.custom_object(KIND, name, MINIMAL)
    )
    try:
        custom_objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, NS, PLURAL, name, {"status": STATUS}
        )
        stored: Any = custom_objects.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)
        assert stored["status"] == STATUS  # nothing pruned
        api = custom_objects.api_client
        method, url, headers, body, post = api.param_serialize(
            "GET",
            f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/{name}",
            header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            auth_settings=["BearerToken"],
        )
        response = api.call_api(method, url, headers, body, post)
        response.read()
        table: Any = json.loads(response.data)
        columns = [c["name"] for c in table["columnDefinitions"]]
        assert columns == [
            "Name", "Target", "Stages", "Ready", "In-Flight", "Desired", "Current", "Active", "Age",
        ]  # fmt: skip
        cells = dict(zip(columns, table["rows"][0]["cells"], strict=True))
        assert cells["Target"] == "parse-worker"
        assert "parsing" in cells["Stages"]
        assert (cells["Ready"], cells["In-Flight"]) == (120, 8)
        assert (cells["Desired"], cells["Current"], cells["Active"]) == (4, 3, "True")
    finally:
        custom_objects.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)


def test_short_name_and_status_subresource(crds_installed: Any, kube_api: Any) -> None:
    ext = client.ApiextensionsV1Api(kube_api)
    crd = ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    assert crd.spec.names.short_names == ["bs"]
    assert crd.spec.scope == "Namespaced"
    (version,) = crd.spec.versions
    assert version.name == VERSION
    assert version.subresources is not None and version.subresources.status is not None
