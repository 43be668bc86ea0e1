"""`backlog-operator doctor` on healthy and broken setups: a real PostgreSQL, a real
kube-apiserver, a real operator process. Each broken setup must fail the named check
(and only the checks it breaks) and exit 1; the healthy one exits 0.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from kubernetes import client

from backlog_operator.report import doctor, doctor_kube
from tests.fixtures.cluster import KubeCluster, wait_until
from tests.integration import _scaler_env as env

pytestmark = pytest.mark.integration


def _doctor(*args: str) -> Result:
    return CliRunner().invoke(doctor.doctor, ["--plain", *args])


def _line(output: str, check: str) -> str:
    """The checklist line of `check` plus its fix lines."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line[7:].startswith(check))
    end = start + 1
    while end < len(lines) and lines[end].startswith(" " * 7):
        end += 1
    return "\n".join(lines[start:end])


def _failed(output: str) -> set[str]:
    names = set()
    for line in output.splitlines():
        if line.startswith("[FAIL]"):
            names.add(line[7:].split("  ")[0].strip())
    return names


# --- database ---------------------------------------------------------------------------


def test_healthy_database_passes(migrated_dsn: str) -> None:
    result = _doctor("--dsn", migrated_dsn, "--no-kube")
    assert result.exit_code == 0, result.output
    assert _failed(result.output) == set()
    assert "[ok  ] partial indexes present" in result.output
    assert "upload_jobs_ready" in _line(result.output, "partial indexes present")


def test_missing_partial_index_is_named_and_the_fix_restores_it(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX upload_pipeline.upload_jobs_ready")
    result = _doctor("--dsn", migrated_dsn, "--no-kube")
    assert result.exit_code == 1
    assert _failed(result.output) == {"partial indexes present"}
    line = _line(result.output, "partial indexes present")
    assert "missing upload_jobs_ready" in line
    statement = next(part for part in line.split("fix: ")[1:]).strip()
    assert statement.startswith("CREATE INDEX CONCURRENTLY upload_jobs_ready")
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(statement)  # the printed fix is a working statement
        (predicate,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'upload_jobs_ready'"
        ).fetchone() or ("",)
    assert "WHERE" in predicate
    assert _doctor("--dsn", migrated_dsn, "--no-kube").exit_code == 0


def test_expired_leases_are_counted_per_stage(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        for lease_ago in (120, 300, 5):  # the last one is within the grace
            doc = uuid.uuid4()
            conn.execute(
                "INSERT INTO upload_pipeline.documents (document_id, filename) VALUES (%s, 'x')",
                (doc,),
            )
            conn.execute(
                "INSERT INTO upload_pipeline.upload_jobs"
                " (document_id, stage, state, claimed_by, claimed_at, lease_expires_at)"
                " VALUES (%s, 'chunking', 'working', 'dead-pod', now() - interval '10 min',"
                "         now() - make_interval(secs => %s))",
                (doc, lease_ago),
            )
    result = _doctor("--dsn", migrated_dsn, "--no-kube", "--lease-grace", "30")
    assert result.exit_code == 1
    assert _failed(result.output) == {"no expired leases"}
    line = _line(result.output, "no expired leases")
    assert "2 jobs held by dead workers (chunking: 2)" in line
    assert "fix: start a worker" in line


def test_pending_migration_is_named(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM backlog_operator.schema_migrations WHERE version = 20")
    result = _doctor("--dsn", migrated_dsn, "--no-kube")
    assert result.exit_code == 1
    assert "schema version current" in _failed(result.output)
    line = _line(result.output, "schema version current")
    assert "pending: 0020_scaletest_results" in line and "db migrate" in line


def test_deadletters_warn_and_fail_only_with_strict(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        doc = uuid.uuid4()
        conn.execute(
            "INSERT INTO upload_pipeline.documents (document_id, filename) VALUES (%s, 'x')",
            (doc,),
        )
        conn.execute(
            "INSERT INTO upload_pipeline.upload_jobs"
            " (document_id, stage, state, finished_at, last_error)"
            " VALUES (%s, 'embedding', 'deadletter', now(), '{\"message\": \"model timeout\"}')",
            (doc,),
        )
    result = _doctor("--dsn", migrated_dsn, "--no-kube")
    assert result.exit_code == 0, result.output
    line = _line(result.output, "no deadletters in the last hour")
    assert line.startswith("[warn]") and "embedding: 1" in line and "model timeout" in line
    assert _doctor("--dsn", migrated_dsn, "--no-kube", "--strict").exit_code == 1


def test_unreachable_database_fails_first_check() -> None:
    result = _doctor("--dsn", "postgresql://x@127.0.0.1:1/none?connect_timeout=2", "--no-kube")
    assert result.exit_code == 1
    assert _failed(result.output) == {"database reachable"}


# --- Kubernetes -------------------------------------------------------------------------


def test_absent_crd_is_named_and_passes_once_installed(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, crds_installed: list[str]
) -> None:
    # A uniquely named copy of a shipped CRD stands in for "not installed" without
    # removing the session's CRDs from under other tests.
    shipped = doctor_kube.shipped_crds()
    extra = copy.deepcopy(next(d for d in shipped if d["spec"]["names"]["kind"] == "ScaleTest"))
    group = f"doctor{uuid.uuid4().hex[:8]}.test"
    extra["spec"]["group"] = group
    extra["metadata"]["name"] = f"scaletests.{group}"
    before = doctor_kube.run(kube_api, [], "backlog-operator", crds=[*shipped, extra])
    crd_check = next(c for c in before if c.name == "CRDs installed and served")
    assert crd_check.failed
    assert crd_check.detail == f"scaletests.{group} absent"
    assert "kubectl apply -k manifests/crds" in crd_check.fix
    # Nothing past the CRDs is checked without them.
    assert [c.name for c in before][-1] == "CRDs installed and served"
    try:
        client.ApiextensionsV1Api(kube_api).create_custom_resource_definition(extra)
        wait_until(
            lambda: (
                not next(
                    c
                    for c in doctor_kube.run(
                        kube_api, [], "backlog-operator", crds=[*shipped, extra]
                    )
                    if c.name == "CRDs installed and served"
                ).failed
            ),
            60,
            "the new CRD Established and served",
        )
    finally:
        client.ApiextensionsV1Api(kube_api).delete_custom_resource_definition(
            extra["metadata"]["name"]
        )


def _ready(api: client.ApiClient, namespace: str, name: str) -> bool:
    dep: Any = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    return bool(dep.status and (dep.status.ready_replicas or 0) >= (dep.spec.replicas or 0) > 0)


def test_healthy_cluster_passes_and_each_broken_part_is_named(
    kube_cluster: KubeCluster,
    kube_api: client.ApiClient,
    namespace: str,
    crds_installed: list[str],
    migrated_dsn: str,
    tmp_path: Path,
) -> None:
    args = ("--dsn", migrated_dsn, "--kubeconfig", str(kube_cluster.kubeconfig), "-n", namespace)
    env.create_peering(kube_api, namespace)
    env.create_dsn_secret(kube_api, namespace, migrated_dsn)
    env.create_worker_deployment(kube_api, namespace, "parse-worker", replicas=1)
    env.create_scaler(
        kube_api,
        namespace,
        env.scaler_body("parse-workers", "parse-worker", ["parsing"], minReplicas=1),
    )
    # No operator yet: that is what doctor names.
    result = _doctor(*args)
    assert result.exit_code == 1
    assert "operator running" in _failed(result.output)
    assert "backlog-operator run" in _line(result.output, "operator running")

    operator = env.OperatorProcess(
        kube_cluster.kubeconfig,
        tmp_path / "operator.log",
        (namespace,),
        extra_args=("--peering", "backlog-operator", "--priority", "7"),
        standalone=False,
    ).start()
    try:
        wait_until(
            lambda: (
                (env.get_scaler(kube_api, namespace, "parse-workers") or {}).get("status") or {}
            ).get("lastReadingTime"),
            60,
            "the scaler read by the operator",
        )
        wait_until(lambda: _ready(kube_api, namespace, "parse-worker"), 60, "parse-worker ready")
        result = _doctor(*args)
        assert result.exit_code == 0, result.output + operator.log()[-3000:]
        assert _failed(result.output) == set()
        assert "(priority 7), 0 standby" in _line(result.output, "leader elected")

        # A pool whose workers crash, and a scaler whose database is unreachable.
        env.create_worker_deployment(
            kube_api, namespace, "embed-worker", replicas=1, command=("sh", "-c", "exit 3")
        )
        env.create_dsn_secret(
            kube_api, namespace, "postgresql://x@127.0.0.1:1/none?connect_timeout=1", name="bad"
        )
        env.create_scaler(
            kube_api,
            namespace,
            env.scaler_body(
                "embed-workers",
                "embed-worker",
                ["embedding"],
                minReplicas=1,
                database={"dsnSecretRef": {"name": "bad", "key": "dsn"}},
                fallback={"failureThreshold": 1, "behavior": "Hold"},
            ),
        )
        wait_until(
            lambda: (
                env.condition(env.get_scaler(kube_api, namespace, "embed-workers"), "Fallback").get(
                    "status"
                )
                == "True"
            ),
            60,
            "embed-workers in fallback",
        )

        def crashed() -> bool:
            pods = (
                client.CoreV1Api(kube_api)
                .list_namespaced_pod(namespace, label_selector="app=embed-worker")
                .items
            )
            return any(
                (cs.restart_count or 0) > 0 or (cs.state and cs.state.terminated)
                for pod in pods
                for cs in (pod.status.container_statuses or [])
            )

        wait_until(crashed, 60, "an embed-worker pod exited")
        result = _doctor(*args)
        assert result.exit_code == 1
        assert _failed(result.output) == {"worker pools healthy", "no scaler in fallback"}
        pools = _line(result.output, "worker pools healthy")
        assert f"Deployment {namespace}/embed-worker: 0/1 ready" in pools
        assert "parse-worker" not in pools
        fallback = _line(result.output, "no scaler in fallback")
        assert f"{namespace}/embed-workers" in fallback and "parse-workers" not in fallback
    finally:
        operator.stop()
