"""The BacklogScaler operator end to end: a real `backlog-operator run` process, a real
kube-apiserver with a process node running the worker pods, a real PostgreSQL.

Each test starts the operator for its own namespace, creates a worker Deployment, a
DSN Secret and a BacklogScaler with short windows, changes the backlog in PostgreSQL
and watches what the operator does to the Deployment, the status and the Events.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from tests.fixtures.cluster import KubeCluster
from tests.integration import _scaler_env as env

pytestmark = pytest.mark.integration
WORKER, SCALER, STAGE = env.WORKER, env.SCALER, env.STAGE
Env = env.Env


scaler_env = env.scaler_env  # the fixture


def test_scales_up_within_behavior_limits_and_deletion_leaves_target(scaler_env: Env) -> None:
    e = scaler_env
    env.create_worker_deployment(e.api, e.namespace, WORKER, replicas=0)
    limited = {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 600}]}
    body = env.scaler_body(
        SCALER,
        WORKER,
        [STAGE],
        behavior={"scaleUp": {"stabilizationWindowSeconds": 0, **limited}},
    )
    env.create_scaler(e.api, e.namespace, body)
    e.wait_condition("Ready", "True")
    assert e.replicas() == 0  # nothing to do yet

    env.insert_jobs(e.dsn, STAGE, 45)  # 45 / backlogPerReplica 10 -> 5 wanted
    e.wait_replicas(2, "(the Pods policy allows +2 per 600 s)")
    e.wait_ready_backlog(45)
    e.holds(2)
    status = e.scaler()["status"]
    assert status["desiredReplicas"] == 2
    assert env.condition(e.scaler(), "Active")["status"] == "True"
    env.wait_event(e.api, e.namespace, SCALER, "ScaledUp", "0 -> 2")

    env.patch_scaler(
        e.api,
        e.namespace,
        SCALER,
        {
            "spec": {
                "behavior": {
                    "scaleUp": {"policies": [{"type": "Pods", "value": 10, "periodSeconds": 600}]}
                }
            }
        },
    )
    e.wait_replicas(5, "once the limit is raised")
    e.holds(5)

    client.CustomObjectsApi(e.api).delete_namespaced_custom_object(
        env.GROUP, env.VERSION, e.namespace, env.PLURAL, SCALER
    )
    env.wait_for(lambda: env.get_scaler(e.api, e.namespace, SCALER) is None, 30, "scaler gone")
    env.finish_all_jobs(e.dsn)  # would scale in if anything were still acting
    e.holds(5, seconds=3)


def test_scale_down_waits_for_stabilization_and_idle_cooldown(scaler_env: Env) -> None:
    e = scaler_env
    env.create_worker_deployment(e.api, e.namespace, WORKER, replicas=0)
    body = env.scaler_body(
        SCALER,
        WORKER,
        [STAGE],
        policy={"type": "BacklogPerReplica", "backlogPerReplica": 10, "idleCooldownSeconds": 3600},
        behavior={
            "scaleUp": {"stabilizationWindowSeconds": 0},
            "scaleDown": {"stabilizationWindowSeconds": 3600},
        },
    )
    env.insert_jobs(e.dsn, STAGE, 25)
    env.create_scaler(e.api, e.namespace, body)
    e.wait_replicas(3)

    env.finish_all_jobs(e.dsn)
    e.wait_ready_backlog(0)
    e.holds(3)  # the 3600 s stabilization window remembers the higher recommendation

    patch = {"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}}
    env.patch_scaler(e.api, e.namespace, SCALER, patch)
    e.wait_replicas(1, "(not zero: the idle cooldown has not passed)")
    e.holds(1)

    patch = {"spec": {"policy": {"idleCooldownSeconds": 0}}}
    env.patch_scaler(e.api, e.namespace, SCALER, patch)
    e.wait_replicas(0, "after the idle cooldown")
    e.wait_condition("Active", "False")
    env.wait_event(e.api, e.namespace, SCALER, "ScaledDown", "3 -> 1")
    env.wait_event(e.api, e.namespace, SCALER, "ScaledDown", "1 -> 0")


def test_leaves_zero_only_above_activation_backlog(scaler_env: Env) -> None:
    e = scaler_env
    env.create_worker_deployment(e.api, e.namespace, WORKER, replicas=0)
    body = env.scaler_body(
        SCALER,
        WORKER,
        [STAGE],
        policy={"type": "BacklogPerReplica", "backlogPerReplica": 10, "activationBacklog": 5},
    )
    env.create_scaler(e.api, e.namespace, body)
    env.insert_jobs(e.dsn, STAGE, 5)
    e.wait_ready_backlog(5)
    e.holds(0)
    assert env.condition(e.scaler(), "Active")["status"] == "False"

    env.insert_jobs(e.dsn, STAGE, 1)
    e.wait_replicas(1, "once the backlog exceeds activationBacklog")
    e.wait_condition("Active", "True")


def test_paused_makes_no_changes_and_unpausing_resumes(scaler_env: Env) -> None:
    e = scaler_env
    env.create_worker_deployment(e.api, e.namespace, WORKER, replicas=0)
    body = env.scaler_body(SCALER, WORKER, [STAGE])
    body["metadata"]["annotations"] = {"backlog.dev/paused": "true"}
    env.create_scaler(e.api, e.namespace, body)
    paused = e.wait_condition("Paused", "True", "PausedByAnnotation")
    assert paused["observedGeneration"] == e.scaler()["metadata"]["generation"]

    env.insert_jobs(e.dsn, STAGE, 30)
    e.wait_ready_backlog(30)
    e.holds(0)

    # spec.paused alone also pauses: swap the annotation for the field.
    env.patch_scaler(
        e.api,
        e.namespace,
        SCALER,
        {"metadata": {"annotations": {"backlog.dev/paused": None}}, "spec": {"paused": True}},
    )
    e.wait_condition("Paused", "True", "PausedBySpec")
    e.holds(0)

    env.patch_scaler(e.api, e.namespace, SCALER, {"spec": {"paused": False}})
    e.wait_condition("Paused", "False")
    e.wait_replicas(3, "after unpausing")
    reasons = env.event_reasons(e.api, e.namespace, SCALER)
    assert "Paused" in reasons and "Resumed" in reasons and "ScaledUp" in reasons


def test_missing_secret_is_reported_not_scaled(scaler_env: Env) -> None:
    e = scaler_env
    env.create_worker_deployment(e.api, e.namespace, WORKER, replicas=1)
    body = env.scaler_body(SCALER, WORKER, [STAGE])
    body["spec"]["database"]["dsnSecretRef"]["name"] = "no-such-secret"
    env.create_scaler(e.api, e.namespace, body)
    cond = e.wait_condition("Ready", "False", "SecretError")
    assert "no-such-secret" in cond["message"]
    assert e.dsn not in str(e.scaler())  # the DSN never shows up in status
    e.holds(1)


def test_scales_a_statefulset(scaler_env: Env) -> None:
    e = scaler_env
    env.create_worker_statefulset(e.api, e.namespace, "embed-worker", replicas=1)
    body = env.scaler_body(SCALER, "embed-worker", ["embedding"], minReplicas=1)
    body["spec"]["scaleTargetRef"]["kind"] = "StatefulSet"
    env.insert_jobs(e.dsn, "embedding", 25)
    env.create_scaler(e.api, e.namespace, body)
    apps = client.AppsV1Api(e.api)
    env.wait_for(
        lambda: (
            apps.read_namespaced_stateful_set_scale("embed-worker", e.namespace).spec.replicas == 3
        ),
        env.WAIT_S,
        "StatefulSet at 3 replicas",
    )
    env.wait_event(e.api, e.namespace, SCALER, "ScaledUp", "StatefulSet/embed-worker 1 -> 3")


def test_metrics_and_liveness_endpoints(
    kube_cluster: KubeCluster,
    kube_api: client.ApiClient,
    namespace: str,
    crds_installed: list[str],
    migrated_dsn: str,
    tmp_path: Path,
) -> None:
    env.create_dsn_secret(kube_api, namespace, migrated_dsn)
    env.create_worker_deployment(kube_api, namespace, WORKER, replicas=0)
    metrics_port, health_port = env.free_port(), env.free_port()
    operator = env.OperatorProcess(
        kube_cluster.kubeconfig,
        tmp_path / "operator.log",
        (namespace,),
        metrics_port=metrics_port,
        health_port=health_port,
    ).start()
    try:
        env.insert_jobs(migrated_dsn, STAGE, 12)
        env.create_scaler(kube_api, namespace, env.scaler_body(SCALER, WORKER, [STAGE]))
        env.wait_for(lambda: env.replicas(kube_api, namespace, WORKER) == 2, 60, "scale to 2")

        def scrape() -> str:
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())

        labels = f'namespace="{namespace}",scaler="{SCALER}"'
        text = env.wait_for(
            lambda: (
                (t := scrape()) and f"backlog_operator_desired_replicas{{{labels}}} 2.0" in t and t
            ),
            30,
            "desired replicas in /metrics",
        )
        ready = f'{labels},stage="parsing",state="ready"'
        assert f"backlog_operator_backlog_jobs{{{ready}}} 12.0" in text
        oldest_series = f"backlog_operator_backlog_oldest_ready_seconds{{{labels}}}"
        oldest = re.search(re.escape(oldest_series) + r" (\S+)", text)
        assert oldest is not None and float(oldest.group(1)) > 0  # 12 jobs wait
        # prometheus-client writes labels in name order
        assert f'backlog_operator_scale_events_total{{direction="up",{labels}}} 1.0' in text
        assert "backlog_operator_source_query_seconds_bucket" in text
        assert "backlog_operator_hub_ticks_total" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=5) as r:
            assert r.status == 200
        client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
            env.GROUP, env.VERSION, namespace, env.PLURAL, SCALER
        )
        env.wait_for(lambda: env.get_scaler(kube_api, namespace, SCALER) is None, 30, "deleted")
    finally:
        operator.stop()
        print("---- operator log (tail) ----\n" + operator.log()[-4000:])


def test_a_refused_scale_is_retried_at_once_not_counted_against_the_limits(
    scaler_env: Env,
) -> None:
    # A ValidatingAdmissionPolicy makes the API server refuse every /scale update in the
    # namespace: a real failed patch. With Pods 4 per 600 s, a refused 0 -> 4 that the
    # policy history still counted would block the retry for ten minutes.
    e = scaler_env
    admission = client.AdmissionregistrationV1Api(e.api)
    policy_name = f"refuse-scale-{e.namespace}"
    admission.create_validating_admission_policy(
        {
            "metadata": {"name": policy_name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["UPDATE"],
                            "resources": ["deployments/scale"],
                        }
                    ]
                },
                "validations": [{"expression": "false", "message": "scaling refused by test"}],
            },
        }
    )
    binding = {
        "metadata": {"name": policy_name},
        "spec": {
            "policyName": policy_name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": e.namespace}}
            },
        },
    }
    try:
        admission.create_validating_admission_policy_binding(binding)
        env.create_worker_deployment(e.api, e.namespace, WORKER, replicas=0)
        limited = {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 600}]}
        body = env.scaler_body(
            SCALER,
            WORKER,
            [STAGE],
            behavior={"scaleUp": {"stabilizationWindowSeconds": 0, **limited}},
        )
        env.insert_jobs(e.dsn, STAGE, 40)  # 40 / 10 per replica -> 4 wanted
        env.create_scaler(e.api, e.namespace, body)
        e.wait_condition("Ready", "False", "ScaleError")
        assert e.replicas() == 0
    finally:
        admission.delete_validating_admission_policy_binding(policy_name)
        admission.delete_validating_admission_policy(policy_name)
    e.wait_replicas(4, "(the refused scale must not use up the 4 pods per 600 s)")
    e.wait_condition("Ready", "True")
