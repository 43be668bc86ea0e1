"""Tests for api.backlogscaler: pinned defaults, defaults applied, errors that name the field.

The CRD side of the defaults is compared in test_crd_backlogscaler_defaults.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from backlog_operator.api import backlogscaler as bs
from backlog_operator.policy import types as t

MINIMAL: dict[str, Any] = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "parse-worker"},
    "database": {"dsnSecretRef": {"name": "upload-db"}},
    "source": {"stages": ["parsing"]},
}

DESIGN_EXAMPLE = """
apiVersion: backlog.dev/v1alpha1
kind: BacklogScaler
metadata: {name: parse-workers, namespace: uploads}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: parse-worker}
  database: {dsnSecretRef: {name: upload-db, key: dsn}}
  source: {schema: upload_pipeline, table: upload_jobs, stages: [parsing, parsed]}
  minReplicas: 0
  maxReplicas: 20
  pollIntervalSeconds: 5
  listen: true
  policy:
    type: QueueWait
    targetQueueWaitSeconds: 30
    targetUtilization: 0.8
    backlogPerReplica: 10
    activationBacklog: 0
    idleCooldownSeconds: 120
    upstreamStages: [chunking]
  behavior:
    scaleUp:   {stabilizationWindowSeconds: 0,  selectPolicy: Max, policies: [{type: Percent, value: 100, periodSeconds: 15}, {type: Pods, value: 4, periodSeconds: 15}]}
    scaleDown: {stabilizationWindowSeconds: 60, selectPolicy: Max, policies: [{type: Percent, value: 100, periodSeconds: 15}]}
  fallback: {failureThreshold: 3, behavior: Hold, replicas: 2}
  drainAwareScaleIn: true
  paused: false
"""  # noqa: E501


def test_empty_spec_gets_every_default() -> None:
    cfg = bs.parse_spec({})
    assert cfg == t.ScalerConfig()
    assert (cfg.min_replicas, cfg.max_replicas, cfg.tolerance, cfg.paused) == (0, 10, 0.1, False)
    assert cfg.policy == t.PolicySpec(
        type=t.PolicyType.QUEUE_WAIT,
        target_queue_wait_s=5.0,
        target_utilization=1.0,
        backlog_per_replica=10.0,
        activation_backlog=0,
        idle_cooldown_s=120.0,
        upstream_stages=(),
    )
    up, down = cfg.behavior.scale_up, cfg.behavior.scale_down
    assert (up.stabilization_window_s, up.select_policy) == (0.0, t.SelectPolicy.MAX)
    assert up.policies == (
        t.RatePolicy(t.RatePolicyType.PERCENT, 400, 15.0),
        t.RatePolicy(t.RatePolicyType.PODS, 4, 15.0),
    )
    assert (down.stabilization_window_s, down.select_policy) == (60.0, t.SelectPolicy.MAX)
    assert down.policies == (t.RatePolicy(t.RatePolicyType.PERCENT, 100, 15.0),)
    assert cfg.fallback == t.Fallback(3, t.FallbackBehavior.HOLD, 2)


def test_design_example_parses() -> None:
    spec = bs.parse_manifest(yaml.safe_load(DESIGN_EXAMPLE))
    assert spec.scale_target_ref == bs.ScaleTargetRef("apps/v1", "Deployment", "parse-worker")
    assert (spec.dsn_secret_name, spec.dsn_secret_key) == ("upload-db", "dsn")
    assert spec.source == bs.SourceSpec(("parsing", "parsed"), "upload_pipeline", "upload_jobs")
    assert (spec.poll_interval_s, spec.listen, spec.drain_aware_scale_in) == (5, True, True)
    assert spec.scaler.max_replicas == 20
    assert spec.scaler.policy.upstream_stages == ("chunking",)
    assert spec.scaler.behavior.scale_down.stabilization_window_s == 60.0


def test_minimal_full_spec_defaults() -> None:
    spec = bs.parse_backlogscaler(MINIMAL)
    assert spec.source == bs.SourceSpec(("parsing",), "upload_pipeline", "upload_jobs")
    assert spec.dsn_secret_key == "dsn"
    assert spec.scaler == t.ScalerConfig()


def test_partial_behavior_keeps_the_other_defaults() -> None:
    cfg = bs.parse_spec({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}})
    assert cfg.behavior.scale_down.stabilization_window_s == 60.0
    assert cfg.behavior.scale_down.policies == t.default_scale_down().policies
    assert cfg.behavior.scale_up == t.default_scale_up()


def test_backlog_per_replica_and_static_fallback() -> None:
    cfg = bs.parse_spec(
        {
            "maxReplicas": 8,
            "policy": {"type": "BacklogPerReplica", "backlogPerReplica": 25},
            "fallback": {"behavior": "Static", "replicas": 3, "failureThreshold": 5},
        }
    )
    assert (cfg.policy.type, cfg.policy.backlog_per_replica) == (
        t.PolicyType.BACKLOG_PER_REPLICA,
        25.0,
    )
    assert cfg.fallback == t.Fallback(5, t.FallbackBehavior.STATIC, 3)


def test_integral_floats_are_integers() -> None:
    assert bs.parse_spec({"maxReplicas": 4.0}).max_replicas == 4


def test_schema_defaults_are_what_the_parser_applies() -> None:
    # Parsing a spec that spells out SCHEMA_DEFAULTS must equal parsing an empty one.
    spelled: dict[str, Any] = {}
    for path, value in bs.SCHEMA_DEFAULTS.items():
        node = spelled
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    spelled["database"]["dsnSecretRef"]["name"] = "upload-db"
    spelled["source"]["stages"] = ["parsing"]
    spelled["scaleTargetRef"] = MINIMAL["scaleTargetRef"]
    assert bs.parse_backlogscaler(spelled) == bs.parse_backlogscaler(MINIMAL)


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"minReplicas": -1}, "spec.minReplicas"),
    ({"maxReplicas": 0}, "spec.maxReplicas"),
    ({"maxReplicas": "ten"}, "spec.maxReplicas"),
    ({"maxReplicas": True}, "spec.maxReplicas"),
    ({"minReplicas": 5, "maxReplicas": 2}, "spec.minReplicas"),
    ({"minReplica": 1}, "spec.minReplica"),
    ({"paused": "yes"}, "spec.paused"),
    ({"policy": {"type": "Cpu"}}, "spec.policy.type"),
    ({"policy": {"targetUtilization": 0}}, "spec.policy.targetUtilization"),
    ({"policy": {"targetUtilization": 1.5}}, "spec.policy.targetUtilization"),
    ({"policy": {"targetQueueWaitSeconds": -3}}, "spec.policy.targetQueueWaitSeconds"),
    ({"policy": {"targetQueueWaitSeconds": float("nan")}}, "spec.policy.targetQueueWaitSeconds"),
    ({"policy": {"type": "BacklogPerReplica"}}, "spec.policy.backlogPerReplica"),
    ({"policy": {"backlogPerReplica": 0}}, "spec.policy.backlogPerReplica"),
    ({"policy": {"activationBacklog": -1}}, "spec.policy.activationBacklog"),
    ({"policy": {"idleCooldownSeconds": 1.5}}, "spec.policy.idleCooldownSeconds"),
    ({"policy": {"upstreamStages": ["nope"]}}, "spec.policy.upstreamStages[0]"),
    ({"policy": {"tolerance": 1}}, "spec.policy.tolerance"),
    ({"policy": "QueueWait"}, "spec.policy"),
    ({"behavior": {"scaleUp": {"selectPolicy": "Most"}}}, "spec.behavior.scaleUp.selectPolicy"),
    (
        {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 3601}}},
        "spec.behavior.scaleDown.stabilizationWindowSeconds",
    ),
    ({"behavior": {"scaleUp": {"policies": []}}}, "spec.behavior.scaleUp.policies"),
    (
        {
            "behavior": {
                "scaleUp": {"policies": [{"type": "Nodes", "value": 1, "periodSeconds": 1}]}
            }
        },
        "spec.behavior.scaleUp.policies[0].type",
    ),
    (
        {
            "behavior": {
                "scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 0}]}
            }
        },
        "spec.behavior.scaleDown.policies[0].periodSeconds",
    ),
    (
        {"behavior": {"scaleDown": {"policies": [{"type": "Pods", "periodSeconds": 15}]}}},
        "spec.behavior.scaleDown.policies[0].value",
    ),
    ({"fallback": {"behavior": "Static"}}, "spec.fallback.replicas"),
    ({"fallback": {"behavior": "Static", "replicas": 0}}, "spec.fallback.replicas"),
    ({"maxReplicas": 3, "fallback": {"replicas": 4}}, "spec.fallback.replicas"),
    ({"fallback": {"failureThreshold": 0}}, "spec.fallback.failureThreshold"),
    ({"fallback": {"behavior": "Scale"}}, "spec.fallback.behavior"),
]


@pytest.mark.parametrize(("spec", "field"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_policy_specs_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(
        ValueError, match=r"^" + field.replace("[", r"\[").replace("]", r"\]") + ":"
    ):
        bs.parse_spec(spec)


INVALID_FULL: list[tuple[dict[str, Any], str]] = [
    ({**MINIMAL, "source": {"stages": []}}, "spec.source.stages"),
    ({**MINIMAL, "source": {"stages": ["parsing", "parsing"]}}, "spec.source.stages"),
    ({**MINIMAL, "source": {"stages": ["parsing"], "schema": "Bad-Name"}}, "spec.source.schema"),
    ({**MINIMAL, "source": {"stages": ["parsing"], "table": "x; drop"}}, "spec.source.table"),
    ({k: v for k, v in MINIMAL.items() if k != "source"}, "spec.source"),
    ({k: v for k, v in MINIMAL.items() if k != "scaleTargetRef"}, "spec.scaleTargetRef"),
    ({**MINIMAL, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment"}},
     "spec.scaleTargetRef.name"),
    ({**MINIMAL, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "deployment", "name": "w"}},
     "spec.scaleTargetRef.kind"),
    ({**MINIMAL, "scaleTargetRef": {"apiVersion": "apps", "kind": "Deployment", "name": "w"}},
     "spec.scaleTargetRef.apiVersion"),
    ({**MINIMAL, "database": {"dsnSecretRef": {"key": "dsn"}}}, "spec.database.dsnSecretRef.name"),
    ({**MINIMAL, "pollIntervalSeconds": 0}, "spec.pollIntervalSeconds"),
    ({**MINIMAL, "listen": 1}, "spec.listen"),
    ({**MINIMAL, "policy": {"upstreamStages": ["parsing"]}}, "spec.policy.upstreamStages"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "field"), INVALID_FULL, ids=[f for _, f in INVALID_FULL])
def test_invalid_full_specs_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=r"^" + field + ":"):
        bs.parse_backlogscaler(spec)


def test_manifest_must_be_a_backlogscaler() -> None:
    with pytest.raises(ValueError, match=r"^kind: expected BacklogScaler"):
        bs.parse_manifest({"kind": "ScaleTest", "spec": {}})
    with pytest.raises(ValueError, match=r"^spec: required"):
        bs.parse_manifest({"kind": "BacklogScaler"})
