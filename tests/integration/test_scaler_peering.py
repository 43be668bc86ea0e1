"""kopf peering: of two operator replicas, only the one with the higher priority acts;
when it stops, the other takes over.

Both run `backlog-operator run --namespace NS --peering backlog-operator` with
priorities 10 and 20 against a KopfPeering object in the namespace (kopf.dev CRDs
from api/crds/kopf-peering.yaml).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from tests.fixtures.cluster import KubeCluster
from tests.integration import _scaler_env as env

pytestmark = pytest.mark.integration
WORKER, SCALER, STAGE = env.WORKER, env.SCALER, env.STAGE


def _operator(
    cluster: KubeCluster, tmp_path: Path, namespace: str, priority: int
) -> env.OperatorProcess:
    return env.OperatorProcess(
        cluster.kubeconfig,
        tmp_path / f"operator-{priority}.log",
        (namespace,),
        extra_args=("--peering", "backlog-operator", "--priority", str(priority)),
        standalone=False,
    )


def _peering_state(proc: env.OperatorProcess) -> str:
    """ "active" or "paused" after the peer's last pause/resume log line."""
    log = proc.log()
    paused, resumed = log.rfind("Pausing operations"), log.rfind("Resuming operations")
    return "active" if resumed > paused else "paused"


def test_only_the_highest_priority_peer_acts_and_the_other_takes_over(
    kube_cluster: KubeCluster,
    kube_api: client.ApiClient,
    namespace: str,
    crds_installed: list[str],
    migrated_dsn: str,
    tmp_path: Path,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    env.create_peering(kube_api, namespace)
    env.create_dsn_secret(kube_api, namespace, migrated_dsn)
    env.create_worker_deployment(kube_api, namespace, WORKER, replicas=0)
    low = _operator(kube_cluster, tmp_path, namespace, 10).start()
    high = _operator(kube_cluster, tmp_path, namespace, 20).start()
    try:
        # kopf starts paused until it has read the peering object; only the highest resumes.
        env.wait_for(
            lambda: _peering_state(high) == "active" and _peering_state(low) == "paused",
            60,
            "high active, low paused",
        )
        env.create_scaler(kube_api, namespace, env.scaler_body(SCALER, WORKER, [STAGE]))
        env.insert_jobs(migrated_dsn, STAGE, 20)
        env.wait_for(lambda: env.replicas(kube_api, namespace, WORKER) == 2, 45, "scale to 2")
        assert "parse-worker 0 -> 2" in high.log()
        assert "parse-worker 0 -> 2" not in low.log()

        high.stop()  # a graceful exit removes its keep-alive: the standby resumes
        env.insert_jobs(migrated_dsn, STAGE, 20)
        env.wait_for(lambda: _peering_state(low) == "active", 60, "the standby resuming")
        env.wait_for(
            lambda: env.replicas(kube_api, namespace, WORKER) == 4, 90, "the standby scaling to 4"
        )
        assert "parse-worker 2 -> 4" in low.log()

        custom.delete_namespaced_custom_object(
            env.GROUP, env.VERSION, namespace, env.PLURAL, SCALER
        )
        env.wait_for(
            lambda: env.get_scaler(kube_api, namespace, SCALER) is None, 30, "scaler deleted"
        )
    finally:
        for proc in (high, low):
            proc.stop()
        print("---- high ----\n" + high.log()[-3000:] + "\n---- low ----\n" + low.log()[-3000:])
