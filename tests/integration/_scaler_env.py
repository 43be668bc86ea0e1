"""Helpers for the BacklogScaler integration tests and benchmarks (not a test module).

`OperatorProcess` runs the real `backlog-operator run` as a subprocess against the
test cluster; the rest create the objects a scaler needs (DSN Secret, worker
Deployment, BacklogScaler), put jobs into PostgreSQL and read back what the
operator did (replicas, status conditions, Events).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.fixtures.cluster import KubeCluster, wait_until

REPO = Path(__file__).resolve().parents[2]
OPERATOR_BIN = Path(sys.executable).parent / "backlog-operator"
GROUP, VERSION, PLURAL = "backlog.dev", "v1alpha1", "backlogscalers"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OperatorProcess:
    """`backlog-operator run --standalone` in a subprocess; logs go to `log_path`."""

    kubeconfig: Path
    log_path: Path
    namespaces: tuple[str, ...] = ()
    metrics_port: int = 0
    extra_args: tuple[str, ...] = ()
    standalone: bool = True
    health_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        args = [str(OPERATOR_BIN), "run", "--health-port", str(self.health_port)]
        if self.standalone:
            args.append("--standalone")
        args += ["--metrics-port", str(self.metrics_port)]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        if not self.namespaces:
            args.append("--all-namespaces")
        args += list(self.extra_args)
        if os.environ.get("BACKLOG_TEST_OPERATOR_VERBOSE") == "1":
            args.append("--verbose")
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), PYTHONUNBUFFERED="1")
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def create_peering(api: client.ApiClient, namespace: str, name: str = "backlog-operator") -> None:
    """The KopfPeering a non-standalone operator uses in `namespace`."""
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": name}},
    )


def create_dsn_secret(api: client.ApiClient, namespace: str, dsn: str, name: str = "db") -> str:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"dsn": base64.b64encode(dsn.encode()).decode()},
    }
    client.CoreV1Api(api).create_namespaced_secret(namespace, body)
    return name


def create_worker_deployment(
    api: client.ApiClient,
    namespace: str,
    name: str,
    replicas: int = 0,
    command: Iterable[str] = ("sleep", "3600"),
) -> None:
    """A Deployment whose pods run `command` on the process node, with POD_NAME set."""
    labels = {"app": name}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "busybox",
                            "command": list(command),
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                        }
                    ],
                },
            },
        },
    }
    client.AppsV1Api(api).create_namespaced_deployment(namespace, body)


def create_worker_statefulset(
    api: client.ApiClient, namespace: str, name: str, replicas: int = 0
) -> None:
    """A StatefulSet whose pods sleep (any /scale kind works; this is the second one)."""
    labels = {"app": name}
    body = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {"name": "worker", "image": "busybox", "command": ["sleep", "3600"]}
                    ],
                },
            },
        },
    }
    client.AppsV1Api(api).create_namespaced_stateful_set(namespace, body)


def scaler_body(name: str, target: str, stages: list[str], **spec: Any) -> dict[str, Any]:
    """A BacklogScaler with test-friendly defaults (fast polls, short windows)."""
    base: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "database": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
        "source": {"stages": stages},
        "minReplicas": 0,
        "maxReplicas": 10,
        "pollIntervalSeconds": 1,
        "policy": {"type": "BacklogPerReplica", "backlogPerReplica": 10},
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0},
            "scaleDown": {"stabilizationWindowSeconds": 0},
        },
    }
    base.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BacklogScaler",
        "metadata": {"name": name},
        "spec": base,
    }


def create_scaler(api: client.ApiClient, namespace: str, body: Mapping[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, dict(body)
    )


def patch_scaler(api: client.ApiClient, namespace: str, name: str, patch: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, patch
    )


def get_scaler(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return obj


def condition(obj: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def replicas(api: client.ApiClient, namespace: str, name: str) -> int:
    scale = client.AppsV1Api(api).read_namespaced_deployment_scale(name, namespace)
    return int(scale.spec.replicas or 0)


def set_replicas(api: client.ApiClient, namespace: str, name: str, count: int) -> None:
    client.AppsV1Api(api).patch_namespaced_deployment_scale(
        name,
        namespace,
        {"spec": {"replicas": count}},
        _content_type="application/merge-patch+json",
    )


def running_pods(api: client.ApiClient, namespace: str, app: str) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}")
    return sorted(
        p.metadata.name
        for p in pods.items
        if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
    )


def live_pods(api: client.ApiClient, namespace: str, app: str) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}")
    return sorted(p.metadata.name for p in pods.items if p.metadata.deletion_timestamp is None)


def events(api: client.ApiClient, namespace: str, name: str) -> list[client.CoreV1Event]:
    listed = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return list(listed.items)


def wait_event(api: client.ApiClient, namespace: str, name: str, reason: str, text: str) -> None:
    """Wait for an Event with `reason` whose message contains `text`.

    The operator posts its Event right after the /scale patch, so a test that has just
    seen the new replica count must wait for the Event rather than race it.
    """

    def messages() -> list[str]:
        return [str(e.message) for e in events(api, namespace, name) if e.reason == reason]

    wait_until(
        lambda: any(text in m for m in messages()),
        WAIT_S,
        f"a {reason} Event containing {text!r}",
    )


def event_reasons(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    return [e.reason for e in events(api, namespace, name)]


def insert_jobs(
    dsn: str, stage: str, count: int, state: str = "queued", claimed_by: str | None = None
) -> list[str]:
    """`count` jobs in `stage`, each with its own document; returns their job ids."""
    ids = []
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        for _ in range(count):
            doc = conn.execute(
                "INSERT INTO upload_pipeline.documents (filename) VALUES (%s)"
                " RETURNING document_id",
                (f"test-{uuid.uuid4().hex[:8]}.pdf",),
            ).fetchone()
            assert doc is not None
            row = conn.execute(
                "INSERT INTO upload_pipeline.upload_jobs"
                " (document_id, stage, state, claimed_by, claimed_at, lease_expires_at)"
                " VALUES (%s, %s, %s, %s, CASE WHEN %s::text IS NULL THEN NULL ELSE now() END,"
                "         CASE WHEN %s::text IS NULL THEN NULL ELSE now() + interval '1 hour' END)"
                " RETURNING job_id",
                (doc[0], stage, state, claimed_by, claimed_by, claimed_by),
            ).fetchone()
            assert row is not None
            ids.append(str(row[0]))
    return ids


def finish_all_jobs(dsn: str) -> None:
    """Every active job -> done (the backlog drains at once)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE upload_pipeline.upload_jobs SET state = 'done', finished_at = now(),"
            " claimed_by = NULL WHERE state IN ('queued', 'working', 'retryable')"
        )


def wait_for(probe: Any, timeout: float, what: str, poll: float = 0.2) -> Any:
    return wait_until(probe, timeout, what, poll)


WORKER = "parse-worker"
SCALER = "parse-workers"
STAGE = "parsing"
WAIT_S = 45


@dataclass(frozen=True)
class Env:
    """One test's world: API client, namespace, database and the running operator."""

    api: client.ApiClient
    namespace: str
    dsn: str
    operator: OperatorProcess

    def replicas(self) -> int:
        return replicas(self.api, self.namespace, WORKER)

    def scaler(self) -> dict:
        obj = get_scaler(self.api, self.namespace, SCALER)
        assert obj is not None
        return obj

    def wait_replicas(self, count: int, what: str = "") -> None:
        wait_for(
            lambda: self._alive() and self.replicas() == count,
            WAIT_S,
            f"{WORKER} at {count} replicas {what}".strip(),
        )

    def wait_condition(self, kind: str, status: str, reason: str | None = None) -> dict:
        def probe() -> dict | None:
            self._alive()
            cond = condition(self.scaler(), kind)
            if cond.get("status") == status and (reason is None or cond.get("reason") == reason):
                return cond
            return None

        result: dict = wait_for(probe, WAIT_S, f"condition {kind}={status} {reason or ''}")
        return result

    def wait_ready_backlog(self, ready: int) -> None:
        wait_for(
            lambda: (
                self._alive()
                and ((self.scaler().get("status") or {}).get("backlog") or {}).get("ready") == ready
            ),
            WAIT_S,
            f"status.backlog.ready == {ready}",
        )

    def holds(self, count: int, seconds: float = 3.0) -> None:
        """The replicas stay at `count` for `seconds` (several 1 s ticks)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.replicas() == count
            time.sleep(0.3)

    def _alive(self) -> bool:
        if not self.operator.alive():
            pytest.fail("the operator exited:\n" + self.operator.log()[-4000:])
        return True


def start_env(
    cluster: KubeCluster, api: client.ApiClient, namespace: str, dsn: str, tmp_path: Path
) -> Iterator[Env]:
    """Secret + operator for `namespace`; afterwards: delete scalers, stop the operator."""
    create_dsn_secret(api, namespace, dsn)
    operator = OperatorProcess(
        cluster.kubeconfig, tmp_path / "operator.log", namespaces=(namespace,)
    ).start()
    try:
        yield Env(api, namespace, dsn, operator)
        # Delete scalers while the operator runs, so kopf releases its finalizer.
        custom = client.CustomObjectsApi(api)
        for item in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
            "items"
        ]:
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, item["metadata"]["name"]
            )
        wait_for(
            lambda: (
                not custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
            ),
            30,
            "BacklogScalers deleted",
        )
    finally:
        operator.stop()
        print("---- operator log (tail) ----\n" + operator.log()[-6000:])


@pytest.fixture
def scaler_env(
    kube_cluster: KubeCluster,
    kube_api: client.ApiClient,
    namespace: str,
    crds_installed: list[str],
    migrated_dsn: str,
    tmp_path: Path,
) -> Iterator[Env]:
    """The operator serving a fresh namespace, with a DSN Secret for a migrated database.

    A fixture: a test module binds it by name, `scaler_env = env.scaler_env`.
    """
    yield from start_env(kube_cluster, kube_api, namespace, migrated_dsn, tmp_path)
