"""The local cluster end to end: real kube-apiserver, kube-controller-manager and
the process node running pods as local processes.

Uses the `kube_cluster`, `kube_api` and `namespace` fixtures from
tests/fixtures/cluster.py. Waits poll with deadlines (a failure when they run
out), never assertions on elapsed time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from devcluster import procs
from devcluster.cluster import DEFAULT_BIN_DIR
from tests.fixtures.cluster import KubeCluster, wait_until

pytestmark = pytest.mark.integration

# Records its start, and on SIGTERM records that too and exits 0.
GRACEFUL = """
import os, pathlib, signal, sys, time
d, pod = pathlib.Path(sys.argv[1]), os.environ["POD_NAME"]
def term(*_):
    (d / (pod + ".term")).write_text(str(os.getpid()))
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
(d / (pod + ".start")).write_text(str(os.getpid()))
while True:
    time.sleep(0.05)
"""

# Notes the SIGTERM and carries on: only SIGKILL ends it.
STUBBORN = """
import os, pathlib, signal, sys, time
d, pod = pathlib.Path(sys.argv[1]), os.environ["POD_NAME"]
signal.signal(signal.SIGTERM, lambda *_: (d / (pod + ".term")).write_text("ignored"))
(d / (pod + ".start")).write_text(str(os.getpid()))
while True:
    time.sleep(0.05)
"""


def _local_only(kube_cluster: KubeCluster) -> None:
    if kube_cluster.local is None:
        pytest.skip("checks local pod processes; E2E_CLUSTER=kubeconfig points at another cluster")


def _container(script: str, marker_dir: Path) -> dict[str, Any]:
    pod_name = {"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    return {
        "name": "main",
        "image": "python:3.11-slim",
        "command": ["python", "-c", script, str(marker_dir)],
        "env": [{"name": "POD_NAME", **pod_name}],
    }


def _pods(core: Any, ns: str, selector: str) -> list[Any]:
    return list(core.list_namespaced_pod(ns, label_selector=selector).items)


def _dead(pid: int) -> bool:
    return procs.start_ticks(pid) is None


def test_deployment_scales_through_the_scale_subresource(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    _local_only(kube_cluster)
    # Any: model attributes are Optional in the stubs; a None here fails the test anyway.
    apps: Any = client.AppsV1Api(kube_api)
    core: Any = client.CoreV1Api(kube_api)
    labels = {"app": "looper"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "looper"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [_container(GRACEFUL, tmp_path)],
                },
            },
        },
    }
    apps.create_namespaced_deployment(namespace, deployment)

    def ready(n: int) -> bool:
        d = apps.read_namespaced_deployment_status("looper", namespace)
        return (d.status.ready_replicas or 0) == n and (d.status.replicas or 0) == n

    apps.patch_namespaced_deployment_scale("looper", namespace, {"spec": {"replicas": 3}})
    wait_until(lambda: len(list(tmp_path.glob("*.start"))) == 3, 90, "three pod processes")
    wait_until(lambda: ready(3), 60, "readyReplicas 3")
    started = {p.name.removesuffix(".start"): int(p.read_text()) for p in tmp_path.glob("*.start")}
    assert len(set(started.values())) == 3, "three distinct local processes"

    apps.patch_namespaced_deployment_scale("looper", namespace, {"spec": {"replicas": 1}})
    wait_until(lambda: len(_pods(core, namespace, "app=looper")) == 1, 90, "two pods to go")
    wait_until(lambda: ready(1), 60, "readyReplicas 1")

    termed = {p.name.removesuffix(".term") for p in tmp_path.glob("*.term")}
    survivor = _pods(core, namespace, "app=looper")[0].metadata.name
    assert len(termed) == 2 and termed <= set(started), termed
    assert survivor in started and survivor not in termed
    for pod in termed:
        assert _dead(started[pod])
        log = kube_cluster.pod_log(namespace, pod)
        # Exited by itself (its handler's exit 0) within the grace period, not SIGKILLed.
        assert "exited with code 0" in log and "killed after the grace period" not in log
    assert not _dead(started[survivor])


def test_process_ignoring_sigterm_is_killed_after_the_grace_period(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    _local_only(kube_cluster)
    core: Any = client.CoreV1Api(kube_api)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stubborn"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [_container(STUBBORN, tmp_path)],
        },
    }
    core.create_namespaced_pod(namespace, pod)
    start = tmp_path / "stubborn.start"
    wait_until(start.exists, 60, "the pod's process to start")
    pid = int(start.read_text())

    def running() -> bool:
        p = core.read_namespaced_pod_status("stubborn", namespace)
        return p.status.phase == "Running" and bool(p.status.container_statuses[0].ready)

    wait_until(running, 30, "pod Running and ready")
    core.delete_namespaced_pod("stubborn", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_pod("stubborn", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, 60, "the pod to be finalized")
    assert (tmp_path / "stubborn.term").read_text() == "ignored", "SIGTERM came first"
    assert _dead(pid)
    log = kube_cluster.pod_log(namespace, "stubborn")
    assert "killed after the grace period" in log
    assert "exited with code 137" in log  # 128 + SIGKILL


def test_kubeconfig_works_with_kubectl_and_the_python_client(
    kube_cluster: KubeCluster, kube_api: client.ApiClient
) -> None:
    kubectl = DEFAULT_BIN_DIR / "kubectl"
    if kube_cluster.local is not None:
        kubectl = kube_cluster.local.bin_dir / "kubectl"
    elif not kubectl.exists():
        kubectl = Path(shutil.which("kubectl") or kubectl)
    assert kubectl.exists(), f"{kubectl} missing: run `make tools`"
    out = subprocess.run(
        [str(kubectl), f"--kubeconfig={kube_cluster.kubeconfig}", "get", "ns", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "namespace/default" in out.stdout.split()
    core: Any = client.CoreV1Api(kube_api)
    names = [ns.metadata.name for ns in core.list_namespace().items]
    assert "default" in names


def test_second_start_reuses_the_running_cluster(kube_cluster: KubeCluster) -> None:
    if kube_cluster.local is None:
        pytest.skip("E2E_CLUSTER=kubeconfig: no local cluster to start twice")
    before = kube_cluster.local.load_state()
    again = kube_cluster.local.start()
    assert again.reused
    assert kube_cluster.local.load_state() == before


def _pod(name: str, policy: str, command: list[str], **extra: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox", "command": command, **extra}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": policy, "containers": [container]},
    }


def test_exit_codes_restart_policies_env_and_pod_identity(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    _local_only(kube_cluster)
    core: Any = client.CoreV1Api(kube_api)
    secret = {"metadata": {"name": "db"}, "stringData": {"dsn": "postgresql://x/y"}}
    core.create_namespaced_secret(namespace, secret)
    dump = (
        "import json, os, sys; from kubernetes import client, config; "
        "config.load_kube_config(); "
        "me = client.AuthenticationV1Api().create_self_subject_review("
        "{'apiVersion': 'authentication.k8s.io/v1', 'kind': 'SelfSubjectReview'}); "
        "env = {k: os.environ[k] for k in ('DSN', 'NS', 'POD_IP')}; "
        "env['user'] = me.status.user_info.username; "
        "open(sys.argv[1], 'w').write(json.dumps(env))"
    )
    env = [
        {"name": "DSN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "dsn"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    out = tmp_path / "env.json"
    for pod in (
        _pod("fails", "Never", ["python", "-c", "raise SystemExit(3)"]),
        _pod("crashes", "Always", ["python", "-c", "raise SystemExit(1)"]),
        _pod("env", "OnFailure", ["python", "-c", dump, str(out)], env=env),
    ):
        core.create_namespaced_pod(namespace, pod)

    def status(name: str) -> Any:
        return core.read_namespaced_pod_status(name, namespace).status

    def terminated(name: str, phase: str) -> Any:
        st = status(name)
        return st.phase == phase and st.container_statuses[0].state.terminated

    assert wait_until(lambda: terminated("fails", "Failed"), 60, "fails Failed").exit_code == 3
    assert wait_until(lambda: terminated("env", "Succeeded"), 60, "env Succeeded").exit_code == 0
    got = json.loads(out.read_text())
    assert got == {
        "DSN": "postgresql://x/y",
        "NS": namespace,
        "POD_IP": "127.0.0.1",
        "user": f"system:serviceaccount:{namespace}:default",
    }

    def restarted_twice() -> bool:
        cs = status("crashes").container_statuses
        return bool(cs) and cs[0].restart_count >= 2

    wait_until(restarted_twice, 60, "crashes to be restarted twice")
    last = status("crashes").container_statuses[0].last_state.terminated
    assert last is not None and last.exit_code == 1
