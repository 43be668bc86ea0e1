"""PostgreSQL goes away under a running operator, then comes back.

A private server (private_pg_server) is stopped mid-run: the scaler must hold the
replicas until the failure threshold, then apply the Static fallback (never zero),
report Ready=False/SourceError, Fallback=True and Warning Events, and recover by
itself when the server is started again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from devcluster.postgres import PostgresServer
from tests.fixtures.cluster import KubeCluster
from tests.integration import _scaler_env as env

pytestmark = pytest.mark.integration
WORKER, SCALER, STAGE = env.WORKER, env.SCALER, env.STAGE


@pytest.fixture
def outage_env(
    kube_cluster: KubeCluster,
    kube_api: client.ApiClient,
    namespace: str,
    crds_installed: list[str],
    private_pg_server: PostgresServer,
    private_migrated_dsn: str,
    tmp_path: Path,
) -> Iterator[env.Env]:
    yield from env.start_env(kube_cluster, kube_api, namespace, private_migrated_dsn, tmp_path)


def test_database_outage_holds_then_falls_back_and_recovers(
    outage_env: env.Env, private_pg_server: PostgresServer
) -> None:
    e = outage_env
    env.create_worker_deployment(e.api, e.namespace, WORKER, replicas=0)
    body = env.scaler_body(
        SCALER,
        WORKER,
        [STAGE],
        fallback={"failureThreshold": 3, "behavior": "Static", "replicas": 4},
    )
    env.insert_jobs(e.dsn, STAGE, 20)  # -> 2 replicas
    env.create_scaler(e.api, e.namespace, body)
    e.wait_replicas(2)
    e.wait_condition("Ready", "True")

    private_pg_server.stop()
    ready = e.wait_condition("Ready", "False", "SourceError")
    assert ready["message"]
    e.wait_condition("Fallback", "True", "FailureThresholdReached")
    e.wait_replicas(4, "(Static fallback)")
    reasons = env.event_reasons(e.api, e.namespace, SCALER)
    assert "SourceError" in reasons and "FallbackActive" in reasons
    status = e.scaler()["status"]
    assert status["consecutiveFailures"] >= 3
    assert status["backlog"]["ready"] == 20  # the last good reading stays in status
    assert e.dsn not in str(e.scaler())
    e.holds(4)

    private_pg_server.start()
    e.wait_condition("Ready", "True")
    e.wait_condition("Fallback", "False")
    e.wait_replicas(2, "(back to the backlog's demand)")
    assert "SourceRecovered" in env.event_reasons(e.api, e.namespace, SCALER)
