"""Drain-aware scale-in: pods holding claims survive, idle pods are deleted.

Six worker pods run; two of them hold in-flight jobs (upload_jobs.claimed_by = pod
name, state working). The scaler's minimum is two, so it scales 6 -> 2; with
pod-deletion-cost set from the claims, the ReplicaSet must delete the four idle pods.
Without the annotation the controller picks by its own ranking, so a pass by chance
is 1 in 15.
"""

from __future__ import annotations

import asyncio

import pytest
from kubernetes import client

from backlog_operator.kube.deletion_cost import DELETION_COST
from backlog_operator.scaler import claims
from backlog_operator.sources.pool import PoolRegistry
from tests.integration import _scaler_env as env

pytestmark = pytest.mark.integration
WORKER, SCALER, STAGE = env.WORKER, env.SCALER, env.STAGE


scaler_env = env.scaler_env  # the fixture


def test_busy_pods_survive_scale_in(scaler_env: env.Env) -> None:
    e = scaler_env
    env.create_worker_deployment(e.api, e.namespace, WORKER, replicas=6)
    pods = env.wait_for(
        lambda: (p := env.running_pods(e.api, e.namespace, WORKER)) and len(p) == 6 and p,
        60,
        "6 worker pods running",
    )
    busy = {pods[1], pods[4]}  # by name: unrelated to the controller's own ranking
    for pod in busy:
        env.insert_jobs(e.dsn, STAGE, 1, state="working", claimed_by=pod)

    body = env.scaler_body(SCALER, WORKER, [STAGE], minReplicas=2, maxReplicas=6)
    env.create_scaler(e.api, e.namespace, body)
    e.wait_replicas(2, "(scale-in to minReplicas)")
    survivors = env.wait_for(
        lambda: (p := env.live_pods(e.api, e.namespace, WORKER)) and len(p) == 2 and p,
        60,
        "4 pods deleted",
    )
    assert set(survivors) == busy
    core = client.CoreV1Api(e.api)
    for pod in survivors:
        annotations = core.read_namespaced_pod(pod, e.namespace).metadata.annotations or {}
        assert annotations.get(DELETION_COST) == "1"
    env.wait_event(e.api, e.namespace, SCALER, "ScaledDown", "6 -> 2")


def test_claims_by_pod_counts_only_working_claims_of_the_given_pods(migrated_dsn: str) -> None:
    env.insert_jobs(migrated_dsn, STAGE, 2, state="working", claimed_by="w-1")
    env.insert_jobs(migrated_dsn, "chunking", 1, state="working", claimed_by="w-1")
    env.insert_jobs(migrated_dsn, STAGE, 1, state="working", claimed_by="w-2")
    env.insert_jobs(migrated_dsn, STAGE, 1, state="working", claimed_by="other")
    env.insert_jobs(migrated_dsn, STAGE, 3)  # queued, unclaimed

    async def read() -> dict[str, int]:
        pools = PoolRegistry()
        try:
            return await claims.claims_by_pod(
                pools, migrated_dsn, "upload_pipeline", "upload_jobs", ["w-1", "w-2", "w-3"]
            )
        finally:
            await pools.close()

    assert asyncio.run(read()) == {"w-1": 3, "w-2": 1}
