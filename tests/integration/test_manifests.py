"""What we ship (Helm chart, kustomize manifests, examples) against the real API server.

- Server-side dry-run apply of the rendered chart (all namespaces, namespaced scoping,
  every optional feature) and of `kubectl kustomize` of manifests/ and manifests/examples/
  (plus the example ScaleTests): the API server's own schema, CEL rules and admission
  judge every object. ServiceMonitor/PrometheusRule are left out: their CRDs (Prometheus
  Operator) are not installed here.
- `helm install` of the chart, then its operator Deployment runs on the process node as
  a real pod of the chart's ServiceAccount (the node hands each pod a TokenRequest token
  for its ServiceAccount: no admin credentials), so any RBAC gap in the chart shows up as
  an operator that cannot watch, read the DSN Secret, or patch /scale. The test then
  checks that this operator scales a worker Deployment from its backlog.
- The kustomize Deployment matches the chart's default rendering.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.fixtures.cluster import KubeCluster, wait_until
from tests.integration import _scaler_env as env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "backlog-operator"
# The pinned control plane's version (hack/versions.env), for `helm template`.
KUBE_VERSION = (REPO / "hack" / "schemas" / "kubernetes" / "VERSION").read_text().strip()
# Kinds whose CRDs this cluster does not have (the Prometheus Operator's).
NOT_INSTALLED = {"ServiceMonitor", "PrometheusRule"}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ClusterKopfPeering",
}


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{REPO / '.local' / 'bin'}:{os.environ.get('PATH', '')}")
    if found is None:
        pytest.fail(f"{name} not found: run `make tools` (builds it from pinned Go modules)")
    return found


def run(*args: str, kubeconfig: Path | None = None, stdin: str | None = None) -> str:
    env_vars = dict(os.environ)
    if kubeconfig is not None:
        env_vars["KUBECONFIG"] = str(kubeconfig)
    proc = subprocess.run(
        args, input=stdin, capture_output=True, text=True, env=env_vars, timeout=180
    )
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(args[:4])} ... failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def helm_template(release: str, namespace: str, *sets: str, crds: bool = False) -> list[Any]:
    args = [tool("helm"), "template", release, str(CHART), "-n", namespace]
    args += ["--kube-version", KUBE_VERSION]
    if crds:
        args.append("--include-crds")
    for value in sets:
        args += ["--set", value]
    return [d for d in yaml.safe_load_all(run(*args)) if d]


def dry_run(kube: KubeCluster, docs: list[Any]) -> list[str]:
    """Server-side dry-run apply; returns kubectl's lines (one per object)."""
    out = run(
        tool("kubectl"),
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        "--field-manager=test-manifests",
        "-f",
        "-",
        kubeconfig=kube.kubeconfig,
        stdin=yaml.safe_dump_all(docs),
    )
    return [line for line in out.splitlines() if line.strip()]


def in_namespace(docs: list[Any], namespace: str) -> list[Any]:
    """Move every namespaced object (and ServiceAccount subject) into `namespace`."""
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects", []):
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace
    return docs


def kinds(docs: list[Any]) -> list[str]:
    return sorted(d["kind"] for d in docs)


# ------------------------------------------------------------------ dry runs
CHART_VALUES = {
    "all-namespaces": (),
    "namespaced": ("watchNamespaces={NS}",),
    "everything": (
        "serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
        "networkPolicy.enabled=true",
        "rbac.scaleTestChaos=true",
        "networkPolicy.apiServerCIDRs={10.0.0.1/32}",
        "podDisruptionBudget.maxUnavailable=50%",
    ),
}


@pytest.mark.parametrize("variant", sorted(CHART_VALUES))
def test_rendered_chart_passes_server_side_dry_run(
    kube_cluster: KubeCluster, crds_installed: list[str], namespace: str, variant: str
) -> None:
    sets = [s.replace("{NS}", "{" + namespace + "}") for s in CHART_VALUES[variant]]
    release = f"bo-{uuid.uuid4().hex[:6]}"
    docs = helm_template(release, namespace, *sets, crds=True)
    expected = {"CustomResourceDefinition", "ServiceAccount", "Deployment", "Service"}
    expected |= {"Role", "RoleBinding"} if variant == "namespaced" else {"ClusterRole"}
    assert expected <= set(kinds(docs)), kinds(docs)
    applied = [d for d in docs if d["kind"] not in NOT_INSTALLED]
    lines = dry_run(kube_cluster, applied)
    assert len(lines) == len(applied), lines
    assert all("serverside-applied (server dry run)" in line for line in lines), lines


def test_chart_refuses_invalid_values() -> None:
    """values.schema.json is enforced: a typo'd key and a bad enum fail `helm template`."""
    helm = (tool("helm"), "template", "x", str(CHART), "--kube-version", KUBE_VERSION)
    for bad in ("replicaCont=2", "image.pullPolicy=Sometimes", "metrics.port=0"):
        proc = subprocess.run(
            [*helm, "--set", bad],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode != 0, f"--set {bad} was accepted"
        assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr


@pytest.mark.parametrize("folder", ["manifests", "manifests/examples"])
def test_kustomize_output_passes_server_side_dry_run(
    kube_cluster: KubeCluster, crds_installed: list[str], namespace: str, folder: str
) -> None:
    docs = [d for d in yaml.safe_load_all(run(tool("kubectl"), "kustomize", str(REPO / folder)))]
    if folder.endswith("examples"):
        for path in sorted((REPO / folder / "scaletests").glob("*.yaml")):
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert {"BacklogScaler", "ScaleTest", "Deployment", "Secret"} <= set(kinds(docs))
    else:
        assert {"CustomResourceDefinition", "ClusterRole", "Deployment"} <= set(kinds(docs))
    docs = in_namespace([d for d in docs if d["kind"] != "Namespace"], namespace)
    lines = dry_run(kube_cluster, docs)
    assert len(lines) == len(docs), lines
    assert all("(server dry run)" in line for line in lines), lines


def test_kustomize_deployment_matches_the_chart() -> None:
    """manifests/operator/deployment.yaml is the chart's default Deployment, image aside."""
    chart = next(
        d
        for d in helm_template("backlog-operator", "backlog-operator")
        if d["kind"] == "Deployment"
    )
    plain = next(
        d
        for d in yaml.safe_load_all((REPO / "manifests/operator/deployment.yaml").read_text())
        if d["kind"] == "Deployment"
    )
    chart_pod, plain_pod = chart["spec"]["template"]["spec"], plain["spec"]["template"]["spec"]
    chart_pod["containers"][0].pop("image")
    assert (
        plain_pod["containers"][0].pop("image").startswith("ghcr.io/backlog-dev/backlog-operator:")
    )
    assert plain_pod == chart_pod
    assert plain["spec"]["replicas"] == chart["spec"]["replicas"] == 2


# ------------------------------------------------------ install + operate
def pod_log(kube: KubeCluster, namespace: str, pod: str) -> str:
    if kube.local is None:
        return "(pod logs: kubectl logs)"
    path = kube.local.state_dir / "pods" / f"{namespace}_{pod}.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else f"(no {path})"


def test_chart_installs_and_its_operator_scales_a_worker_with_the_charts_rbac(
    kube_cluster: KubeCluster,
    kube_api: client.ApiClient,
    crds_installed: list[str],
    namespace: str,
    migrated_dsn: str,
) -> None:
    if kube_cluster.local is None:
        pytest.skip("runs the chart's operator pod on the local process node")
    release = f"bo-{uuid.uuid4().hex[:6]}"
    metrics_port, health_port = env.free_port(), env.free_port()
    helm = tool("helm")
    run(
        helm,
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        # One replica: pods of the process node share the host's ports.
        "--set",
        "replicaCount=1",
        "--set",
        f"watchNamespaces={{{namespace}}}",
        "--set",
        "image.repository=backlog-operator",  # the process node runs the venv's script
        "--set",
        f"metrics.port={metrics_port}",
        "--set",
        f"health.port={health_port}",
        kubeconfig=kube_cluster.kubeconfig,
    )
    core = client.CoreV1Api(kube_api)
    selector = f"app.kubernetes.io/instance={release}"
    try:

        def running() -> list[Any]:
            pods = core.list_namespaced_pod(namespace, label_selector=selector).items
            return [p for p in pods if p.status.phase == "Running"]

        pods = wait_until(running, 120, "the chart's operator pod Running")
        assert len(pods) == 1
        pod = pods[0].metadata.name
        assert pods[0].spec.service_account_name == release + "-backlog-operator"

        # Namespaced scoping: the ServiceAccount may scale here, and nowhere else.
        user = f"system:serviceaccount:{namespace}:{pods[0].spec.service_account_name}"
        assert can(kube_api, user, "patch", "apps", "deployments", "scale", namespace)
        assert can(kube_api, user, "get", "", "secrets", "", namespace)
        assert not can(kube_api, user, "patch", "apps", "deployments", "scale", "default")
        assert not can(kube_api, user, "list", "", "secrets", "", namespace)
        assert not can(kube_api, user, "patch", "kopf.dev", "clusterkopfpeerings", "", "")

        env.create_dsn_secret(kube_api, namespace, migrated_dsn)
        env.create_worker_deployment(kube_api, namespace, "parse-worker", replicas=0)
        env.create_scaler(
            kube_api,
            namespace,
            env.scaler_body("parse-workers", "parse-worker", ["parsing"], maxReplicas=5),
        )
        env.insert_jobs(migrated_dsn, "parsing", 30)

        def scaled() -> bool:
            return env.replicas(kube_api, namespace, "parse-worker") == 3

        try:
            wait_until(scaled, 120, "the chart's operator to scale parse-worker to 3")
        except BaseException:
            print(pod_log(kube_cluster, namespace, pod))
            raise

        # /scale is patched before status is written: wait for the status too.
        def reported() -> dict[str, Any] | None:
            obj = env.get_scaler(kube_api, namespace, "parse-workers") or {}
            ready = env.condition(obj, "Ready").get("status") == "True"
            status: dict[str, Any] = obj.get("status") or {}
            return status if ready and status.get("desiredReplicas") == 3 else None

        wait_until(reported, 30, "status.desiredReplicas 3 and Ready=True")

        # The chart's --metrics-port reaches the operator's registry.
        def scraped() -> str | None:
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                text: str = response.read().decode()
            labels = f'namespace="{namespace}",scaler="parse-workers"'
            return text if f"backlog_operator_desired_replicas{{{labels}}} 3.0" in text else None

        wait_until(scraped, 30, "desired replicas on the operator's /metrics")
    finally:
        run(
            helm,
            "uninstall",
            release,
            "-n",
            namespace,
            "--wait",
            kubeconfig=kube_cluster.kubeconfig,
        )
    leftovers = client.RbacAuthorizationV1Api(kube_api).list_cluster_role(
        label_selector=f"app.kubernetes.io/instance={release}"
    )
    assert leftovers.items == []


def can(
    api: client.ApiClient,
    user: str,
    verb: str,
    group: str,
    resource: str,
    subresource: str,
    namespace: str,
) -> bool:
    sa_namespace = user.split(":")[2]
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{sa_namespace}",
                    "system:authenticated",
                ],
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "subresource": subresource,
                    "namespace": namespace,
                },
            },
        }
    )
    return bool(review.status.allowed)


def test_committed_kubernetes_schemas_match_the_api_server(kube_cluster: KubeCluster) -> None:
    """hack/schemas/kubernetes (kubeconform's built-in schemas) is what the pinned
    kube-apiserver's /openapi/v2 gives today (rerun hack/kube_schemas.py otherwise)."""
    import kube_schemas  # hack/ is on the test path

    if kube_cluster.local is None:
        pytest.skip("compares with the pinned local control plane, not a given cluster")
    folder = REPO / "hack" / "schemas" / "kubernetes"
    kubeconfig = str(kube_cluster.kubeconfig)
    assert (folder / "VERSION").read_text().strip() == kube_schemas.server_version(kubeconfig)
    expected = kube_schemas.schemas(kube_schemas.fetch_openapi(kubeconfig))
    committed = {p.name: p.read_text() for p in folder.glob("*.json")}
    assert sorted(committed) == sorted(expected)
    stale = [name for name, text in expected.items() if committed[name] != text]
    assert not stale, f"stale: {stale}; run hack/kube_schemas.py against the pinned cluster"
