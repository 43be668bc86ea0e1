"""The demo's infrastructure: PostgreSQL, the local cluster, CRDs and RBAC, the operator.

Everything lives under .local/demo/ (apart from the developers' own
.local/cluster and .local/postgres, so a demo never disturbs them). `Infra`
records what was started so `teardown()` stops exactly that. Called by
demo/run.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from backlog_operator.db import migrate
from backlog_operator.report import doctor_kube
from devcluster.cluster import REPO_ROOT, LocalCluster
from devcluster.kubeconfig import write_token_kubeconfig
from devcluster.postgres import PostgresServer

# DEMO_STATE moves it (the e2e test uses a temporary folder).
STATE = Path(os.environ.get("DEMO_STATE") or REPO_ROOT / ".local" / "demo")
NAMESPACE = "uploads"
# Registers the ScaleTest handlers next to the scaler's, whether or not `run` imports them.
LAUNCH = (
    "import sys, backlog_operator.scaletest.handlers; "
    "from backlog_operator.cli import main; sys.exit(main())"
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Infra:
    state: Path = STATE
    postgres: PostgresServer | None = None
    cluster: LocalCluster | None = None
    dsn: str = ""
    operator: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    api: Any = field(default=None, repr=False)

    @property
    def kubeconfig(self) -> Path:
        return self.state / "cluster" / "kubeconfig"

    @property
    def operator_log(self) -> Path:
        return self.state / "operator.log"

    # --- PostgreSQL ---------------------------------------------------------------
    def start_postgres(self) -> str:
        data = self.state / "pg" / "data"
        data.parent.mkdir(parents=True, exist_ok=True)
        # The server runs as `postgres` when we are root: it must pass through.
        for parent in (self.state, data.parent):
            parent.chmod(0o711)
        self.postgres = PostgresServer(data)
        self.postgres.start()
        self.dsn = self.postgres.create_database("uploads")
        migrate.apply(self.dsn)
        (self.state / "dsn").write_text(self.dsn + "\n")
        return self.dsn

    # --- cluster --------------------------------------------------------------------
    def start_cluster(self) -> float:
        self.cluster = LocalCluster(self.state / "cluster", log=lambda msg: None)
        missing = self.cluster.missing_binaries()
        if missing:
            raise RuntimeError(f"control-plane binaries missing ({missing[0]}): run `make tools`")
        took = self.cluster.start().seconds
        self.api = config.new_client_from_config(config_file=str(self.kubeconfig))
        return took

    def install_crds_and_rbac(self) -> list[str]:
        ext: Any = client.ApiextensionsV1Api(self.api)
        names = []
        for doc in doctor_kube.shipped_crds():
            names.append(doc["metadata"]["name"])
            try:
                ext.create_custom_resource_definition(doc)
            except ApiException as error:
                if error.status != 409:
                    raise
        deadline = time.monotonic() + 60
        while not all(_served(self.api, doc) for doc in doctor_kube.shipped_crds()):
            if time.monotonic() > deadline:
                raise RuntimeError("CRDs not served after 60 s")
            time.sleep(0.3)
        core: Any = client.CoreV1Api(self.api)
        _create(lambda: core.create_namespace({"metadata": {"name": "backlog-operator"}}))
        for path in sorted((REPO_ROOT / "manifests" / "rbac").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") != "Kustomization":
                    _apply_rbac(self.api, doc)
        return names

    # --- operator -------------------------------------------------------------------
    def operator_kubeconfig(self) -> Path:
        """A kubeconfig with a token of ServiceAccount backlog-operator (manifests/rbac).

        The operator then runs with exactly the RBAC a cluster install gives it, so a
        missing rule fails the demo instead of hiding behind the admin's rights.
        """
        core: Any = client.CoreV1Api(self.api)

        def account() -> bool:
            try:
                core.read_namespaced_service_account("backlog-operator", "backlog-operator")
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
            return True

        deadline = time.monotonic() + 30
        while not account():
            if time.monotonic() > deadline:
                raise RuntimeError("ServiceAccount backlog-operator/backlog-operator not found")
            time.sleep(0.3)
        request = {"spec": {"expirationSeconds": 24 * 3600}}
        answer = core.create_namespaced_service_account_token(
            "backlog-operator", "backlog-operator", request
        )
        admin = yaml.safe_load(self.kubeconfig.read_text())
        cluster = admin["clusters"][0]["cluster"]
        path = self.state / "operator.kubeconfig"
        write_token_kubeconfig(
            path,
            cluster["server"],
            cluster["certificate-authority-data"],
            answer.status.token,
            "system:serviceaccount:backlog-operator:backlog-operator",
        )
        return path

    def start_operator(self) -> None:
        kubeconfig = self.operator_kubeconfig()
        self.metrics_port = _free_port()
        args = [
            sys.executable,
            "-c",
            LAUNCH,
            "run",
            "--namespace",
            NAMESPACE,
            "--peering",
            "backlog-operator",
            "--priority",
            "100",
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            "0",
        ]
        env = dict(os.environ, KUBECONFIG=str(kubeconfig), PYTHONUNBUFFERED="1")
        log = self.operator_log.open("ab")
        self.operator = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        (self.state / "operator.pid").write_text(str(self.operator.pid))

    def operator_alive(self) -> bool:
        return self.operator is not None and self.operator.poll() is None

    def stop_operator(self) -> None:
        if self.operator is None or self.operator.poll() is not None:
            return
        self.operator.send_signal(signal.SIGTERM)
        try:
            self.operator.wait(30)
        except subprocess.TimeoutExpired:
            self.operator.kill()
            self.operator.wait(5)

    # --- teardown -------------------------------------------------------------------
    def teardown(self) -> None:
        """Stop what this demo started and delete its state (the reports stay)."""
        self.stop_operator()
        cluster = self.cluster or LocalCluster(self.state / "cluster", log=lambda msg: None)
        cluster.stop()
        data = self.state / "pg" / "data"
        server = self.postgres or (PostgresServer(data) if (data / "PG_VERSION").exists() else None)
        if server is not None:
            server.stop(mode="fast")
        shutil.rmtree(self.state, ignore_errors=True)


def kill_kept_operator(state: Path = STATE) -> None:
    """`down` after KEEP=1: the operator is no child of ours any more; its pid was recorded."""
    pid_file = state / "operator.pid"
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"backlog_operator" in cmdline:  # still our process, not a recycled pid
        os.kill(pid, signal.SIGTERM)


def _create(call: Any) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != 409:
            raise


def _served(api: Any, doc: dict[str, Any]) -> bool:
    spec = doc["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("served", True))
    try:
        client.CustomObjectsApi(api).list_cluster_custom_object(
            spec["group"], version, spec["names"]["plural"]
        )
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _apply_rbac(api: Any, doc: dict[str, Any]) -> None:
    rbac: Any = client.RbacAuthorizationV1Api(api)
    core: Any = client.CoreV1Api(api)
    kind = doc["kind"]
    ns = doc["metadata"].get("namespace", "backlog-operator")
    create = {
        "ClusterRole": lambda: rbac.create_cluster_role(doc),
        "ClusterRoleBinding": lambda: rbac.create_cluster_role_binding(doc),
        "Role": lambda: rbac.create_namespaced_role(ns, doc),
        "RoleBinding": lambda: rbac.create_namespaced_role_binding(ns, doc),
        "ServiceAccount": lambda: core.create_namespaced_service_account(ns, doc),
    }.get(kind)
    if create is None:
        raise RuntimeError(f"manifests/rbac: unexpected kind {kind}")
    _create(create)
