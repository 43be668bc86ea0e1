"""ScaleTest end to end: a real `backlog-operator run`, real worker pods (parse, chunk,
embed pools) scaled by BacklogScalers, a real PostgreSQL.

On the process node (E2E_CLUSTER unset or `local`) each test gets its own namespace,
database and operator process. On a given cluster (E2E_CLUSTER=kubeconfig: kind in CI)
the tests use the operator the chart installed, worker pods run E2E_IMAGE and each test
gets a database on the cluster's PostgreSQL (tests/fixtures/e2e.py). Loads are short
(tens of seconds) with tiny service times; waits have deadlines but no test asserts a
duration.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.fixtures.cluster import KubeCluster, wait_until
from tests.fixtures.e2e import (
    BIN,
    E2EDatabase,
    InstalledOperator,
    LocalOperator,
    Operator,
    start_operator,
    worker_container,
)

pytestmark = pytest.mark.e2e

__all__ = ["BIN", "GROUP", "VERSION", "World", "world"]  # test_calibration.py uses them
GROUP, VERSION = "backlog.dev", "v1alpha1"
POOLS: dict[str, list[str]] = {
    "parse": ["queued", "job_validated", "parsing", "parsed", "parse_validated"],
    "chunk": ["chunking", "chunks_buffered", "chunked"],
    "embed": ["embedding", "embeddings_buffered", "embedded"],
}
WORKLOAD = {
    "serviceTime": {
        "default": {"meanSeconds": 0.005, "distribution": "Constant"},
        "stages": {
            s: {"meanSeconds": 0.05, "distribution": "Exponential"}
            for s in ("parsing", "chunking", "embedding")
        },
    },
    "failureRate": 0.0,
}


@dataclass
class World:
    api: client.ApiClient
    namespace: str
    dsn: str
    operator: Operator

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def create_scaletest(self, name: str, spec: Mapping[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ScaleTest",
            "metadata": {"name": name},
            "spec": dict(spec),
        }
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "scaletests", body
        )

    def scaletest(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "scaletests", name
        )
        return obj

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.scaletest(name).get("status") or {})

    def wait_phase(self, name: str, phases: set[str], timeout: float) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            self.operator.alive()
            current = self.status(name)
            return current if current.get("phase") in phases else None

        found: dict[str, Any] = wait_until(probe, timeout, f"ScaleTest {name} in {phases}", 0.5)
        return found

    def pools(self, max_replicas: int = 3) -> None:
        """Three worker Deployments and their BacklogScalers."""
        for pool, stages in POOLS.items():
            deployment(self.api, self.namespace, f"{pool}-worker", stages)
            self.custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                "backlogscalers",
                scaler(f"{pool}-workers", f"{pool}-worker", stages, max_replicas),
            )

    def replicas(self, deployment_name: str) -> int:
        scale = client.AppsV1Api(self.api).read_namespaced_deployment_scale(
            deployment_name, self.namespace
        )
        return int(scale.spec.replicas or 0)

    def event_reasons(self, name: str) -> list[str]:
        listed = client.CoreV1Api(self.api).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return [e.reason for e in listed.items]

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(query, params).fetchall()


def deployment(
    api: client.ApiClient, namespace: str, name: str, stages: list[str], replicas: int = 0
) -> None:
    labels = {"app": name, "role": "pipeline-worker"}
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "BACKLOG_DSN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "dsn"}}},
    ]
    worker_args = [
        "--stages",
        ",".join(stages),
        "--metrics-port",
        "0",
        "--concurrency",
        "4",
        "--poll-interval",
        "0.2",
        "--grace-seconds",
        "1",
        "--lease-seconds",
        "4",
        "--reap-interval",
        "1",
        "--backoff-base",
        "0.1",
        "--backoff-cap",
        "0.5",
    ]
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 3,
                    "containers": [worker_container(worker_args, env)],
                },
            },
        },
    }
    client.AppsV1Api(api).create_namespaced_deployment(namespace, body)


def scaler(name: str, target: str, stages: list[str], max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BacklogScaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "database": {"dsnSecretRef": {"name": "db"}},
            "source": {"stages": stages},
            "minReplicas": 0,
            "maxReplicas": max_replicas,
            "pollIntervalSeconds": 1,
            "policy": {
                "type": "BacklogPerReplica",
                "backlogPerReplica": 5,
                "idleCooldownSeconds": 3,
            },
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0},
                "scaleDown": {"stabilizationWindowSeconds": 2},
            },
        },
    }


def spike_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "database": {"dsnSecretRef": {"name": "db"}},
        "scalers": [f"{pool}-workers" for pool in POOLS],
        "load": {
            "profile": "Spike",
            "ratePerSecond": 3,
            "peakRatePerSecond": 25,
            "spikeStartSeconds": 4,
            "spikeDurationSeconds": 4,
            "durationSeconds": 14,
            "producers": 10,
        },
        "workload": WORKLOAD,
        "slo": {
            "p95EndToEndSeconds": 120,
            "maxLostJobs": 0,
            "maxDuplicateCompletions": 0,
            "maxDrainSeconds": 180,
        },
        "drainTimeoutSeconds": 180,
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def world(
    kube_cluster: KubeCluster,
    kube_api: client.ApiClient,
    namespace: str,
    crds_installed: list[str],
    e2e_database: E2EDatabase,
    tmp_path: Path,
) -> Iterator[World]:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_secret(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            # The DSN as the operator and the worker pods reach the database.
            "data": {"dsn": base64.b64encode(e2e_database.cluster_dsn.encode()).decode()},
        },
    )
    operator = start_operator(kube_cluster, kube_api, namespace, tmp_path)
    w = World(kube_api, namespace, e2e_database.dsn, operator)
    try:
        yield w
        # Delete our objects while the operator runs, so kopf releases its finalizers.
        for plural in ("scaletests", "backlogscalers"):
            for item in w.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)[
                "items"
            ]:
                w.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, item["metadata"]["name"]
                )
        wait_until(
            lambda: (
                not any(
                    w.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, p)["items"]
                    for p in ("scaletests", "backlogscalers")
                )
            ),
            60,
            "objects deleted",
        )
    finally:
        # w.operator, not `operator`: the restart test replaces it with a new process.
        w.operator.stop()
        print("---- operator log (tail) ----\n" + w.operator.log()[-8000:])


def _run_counts(w: World, run_id: str) -> tuple[int, int, int]:
    ((jobs, done, dup),) = w.sql(
        "SELECT count(*),"
        " count(*) FILTER (WHERE state = 'done'),"
        " (SELECT count(*) FROM (SELECT 1 FROM upload_pipeline.events e"
        "    JOIN upload_pipeline.upload_jobs j USING (job_id)"
        "   WHERE j.run_id = %s AND e.event_type = 'stage_done'"
        "   GROUP BY e.job_id, e.stage HAVING count(*) > 1) d)"
        " FROM upload_pipeline.upload_jobs WHERE run_id = %s AND payload->>'part' = 'load'",
        run_id,
        run_id,
    )
    return int(jobs), int(done), int(dup)


def test_spike_scaletest_passes_and_records_results(world: World) -> None:
    w = world
    w.pools()
    w.create_scaletest("spike", spike_spec())
    final = w.wait_phase("spike", {"Succeeded", "Failed"}, 300)
    assert final["phase"] == "Succeeded", final
    assert final["verdict"] == "Passed"
    results, progress = final["results"], final["progress"]
    print("spike results:", json.dumps(results, indent=1, sort_keys=True))
    run_id = final["runId"]
    assert results["lostJobs"] == 0 and results["duplicateCompletions"] == 0
    assert results["jobs"] == progress["jobsRequested"] == progress["jobsCreated"] > 0
    assert all(s["met"] for s in results["slo"])
    assert {s["name"] for s in results["slo"]} == {
        "p95EndToEndSeconds",
        "maxDrainSeconds",
        "maxLostJobs",
        "maxDuplicateCompletions",
    }
    # Replicas rose during the load ...
    assert max(results["maxReplicas"].values()) >= 2, results["maxReplicas"]
    assert set(results["maxReplicas"]) == {f"{p}-workers" for p in POOLS}
    assert results["timeToFirstScaleSeconds"] >= 0
    assert results["latency"]["endToEnd"]["p95"] >= results["latency"]["endToEnd"]["p50"]
    assert results["bottleneckStage"] in {s for stages in POOLS.values() for s in stages}
    # ... and fell once the backlog was gone.
    for pool in POOLS:
        wait_until(lambda p=pool: w.replicas(f"{p}-worker") == 0, 90, f"{pool}-worker at 0")

    # The status summary agrees with the results tables.
    ((verdict, stored, phase, requested),) = w.sql(
        "SELECT verdict, results, phase, load_requested FROM backlog_operator.scaletest_runs"
        " WHERE run_id = %s",
        run_id,
    )
    assert (verdict, phase, requested) == ("Passed", "Succeeded", results["jobs"])
    assert stored["jobs"] == results["jobs"]
    assert stored["latency"]["endToEnd"] == results["latency"]["endToEnd"]
    assert stored["maxReplicas"] == results["maxReplicas"]
    stages = w.sql(
        "SELECT stage, completions FROM backlog_operator.scaletest_stage_stats"
        " WHERE run_id = %s AND part = 'load' AND completions > 0",
        run_id,
    )
    assert len(stages) == 11 and {c for _, c in stages} == {results["jobs"]}
    assert set(results["latency"]["stages"]) == {s for s, _ in stages}
    samples = w.sql(
        "SELECT count(*), max(desired) FROM backlog_operator.scaletest_scaler_samples"
        " WHERE run_id = %s",
        run_id,
    )
    assert samples[0][0] > 0 and samples[0][1] >= 2
    slo_rows = w.sql(
        "SELECT name, met FROM backlog_operator.scaletest_slo_results WHERE run_id = %s", run_id
    )
    assert len(slo_rows) == 4 and all(met for _, met in slo_rows)
    # cleanup OnSuccess: the synthetic jobs are gone, the results stay.
    assert _run_counts(w, run_id)[0] == 0
    reasons = w.event_reasons("spike")
    assert {"LoadStarted", "LoadFinished", "Drained", "SLOsMet"} <= set(reasons), reasons
    conditions = {c["type"]: c for c in final["conditions"]}
    assert conditions["Completed"]["status"] == "True"
    assert conditions["Completed"]["reason"] == "SLOsMet"


def test_chaos_loses_no_jobs_and_completes_none_twice(world: World) -> None:
    w = world
    w.pools()
    spec = spike_spec(
        chaos={
            "deletePodsEverySeconds": 3,
            "podsPerRound": 1,
            "selector": {"matchLabels": {"role": "pipeline-worker"}},
        },
        cleanup="Never",
    )
    w.create_scaletest("chaos", spec)
    final = w.wait_phase("chaos", {"Succeeded", "Failed"}, 300)
    assert final["phase"] == "Succeeded", final
    assert final["progress"]["podsDeleted"] >= 1
    assert final["results"]["podsDeleted"] == final["progress"]["podsDeleted"]
    assert final["results"]["lostJobs"] == 0
    assert final["results"]["duplicateCompletions"] == 0
    # Checked against the database itself, not only the operator's summary.
    jobs, done, duplicates = _run_counts(w, final["runId"])
    assert jobs == done == final["progress"]["jobsRequested"]
    assert duplicates == 0


def test_operator_sigkill_during_loading_resumes_with_exact_job_count(
    world: World, kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    w = world
    deployment(
        w.api, w.namespace, "all-worker", [s for st in POOLS.values() for s in st], replicas=2
    )
    spec = {
        "database": {"dsnSecretRef": {"name": "db"}},
        "load": {
            "profile": "Constant",
            "ratePerSecond": 20,
            "durationSeconds": 12,
            "producers": 10,
        },
        "workload": WORKLOAD,
        "slo": {"maxLostJobs": 0},
        "cleanup": "Never",
        "drainTimeoutSeconds": 120,
    }
    w.create_scaletest("restart", spec)

    def loading_midway() -> dict[str, Any] | None:
        w.operator.alive()
        current = w.status("restart")
        created = (current.get("progress") or {}).get("jobsCreated", 0)
        return current if current.get("phase") == "Loading" and 20 <= created < 200 else None

    before = wait_until(loading_midway, 60, "Loading with some jobs created", 0.2)
    w.operator.kill()
    (created_at_kill,) = w.sql(
        "SELECT count(*) FROM upload_pipeline.upload_jobs WHERE run_id = %s", before["runId"]
    )[0]
    if isinstance(w.operator, LocalOperator):
        time.sleep(2)  # the producers are gone with the process: nothing more arrives
        (still,) = w.sql(
            "SELECT count(*) FROM upload_pipeline.upload_jobs WHERE run_id = %s", before["runId"]
        )[0]
        assert still == created_at_kill < 240
        w.operator = LocalOperator(kube_cluster.kubeconfig, w.namespace, tmp_path / "operator2.log")
        w.operator.start()
    else:
        # Given cluster: kill() force-deleted the installed operator's pods and waited for a
        # replacement; kubelet may give the old containers ~2 s, and the new leader resumes
        # by itself, so "nothing arrives meanwhile" is not observable here. Resuming with
        # the same run and the exact job count is.
        assert isinstance(w.operator, InstalledOperator)
        assert created_at_kill < 240
    final = w.wait_phase("restart", {"Succeeded", "Failed"}, 180)
    assert final["phase"] == "Succeeded", final
    assert final["runId"] == before["runId"]
    jobs, done, duplicates = _run_counts(w, final["runId"])
    assert jobs == 240 == final["progress"]["jobsRequested"] == final["results"]["jobs"]
    assert done == 240 and duplicates == 0
    ((produced,),) = w.sql(
        "SELECT sum(produced) FROM backlog_operator.scaletest_producers"
        " WHERE run_id = %s AND part = 'load'",
        final["runId"],
    )
    assert produced == 240


def test_impossible_slo_fails_naming_it(world: World) -> None:
    w = world
    deployment(
        w.api, w.namespace, "all-worker", [s for st in POOLS.values() for s in st], replicas=1
    )
    spec = {
        "database": {"dsnSecretRef": {"name": "db"}},
        "load": {"profile": "Constant", "ratePerSecond": 10, "durationSeconds": 3, "producers": 2},
        "workload": WORKLOAD,
        "slo": {"p95EndToEndSeconds": 0.0001, "maxLostJobs": 0},
    }
    runs_failed = 'backlog_operator_scaletest_runs_total{verdict="Failed"}'
    # The installed operator's counters span every test (compare deltas); a local one
    # was started for this test and may not listen yet.
    failed_before = 0.0
    if isinstance(w.operator, InstalledOperator):
        failed_before = w.operator.metric(runs_failed) or 0.0
    w.create_scaletest("tight", spec)
    final = w.wait_phase("tight", {"Succeeded", "Failed"}, 120)
    assert final["phase"] == "Failed" and final["verdict"] == "Failed"
    assert "p95EndToEndSeconds" in final["message"]
    assert "maxLostJobs" not in final["message"]
    verdicts = {s["name"]: s for s in final["results"]["slo"]}
    assert verdicts["p95EndToEndSeconds"]["met"] is False
    assert verdicts["p95EndToEndSeconds"]["observed"] > 0.0001
    assert verdicts["maxLostJobs"]["met"] is True
    completed = {c["type"]: c for c in final["conditions"]}["Completed"]
    assert completed["reason"] == "SLONotMet" and "p95EndToEndSeconds" in completed["message"]
    assert "SLONotMet" in w.event_reasons("tight")
    assert (w.operator.metric(runs_failed) or 0.0) - failed_before == 1.0
    # OnSuccess keeps a failed run's jobs for inspection.
    assert _run_counts(w, final["runId"])[0] == 30


def test_baseline_is_measured_and_drives_a_from_baseline_load(world: World) -> None:
    w = world
    deployment(
        w.api, w.namespace, "all-worker", [s for st in POOLS.values() for s in st], replicas=1
    )
    spec = {
        "database": {"dsnSecretRef": {"name": "db"}},
        "baseline": {"durationSeconds": 3, "ratePerSecond": 5},
        "load": {
            "profile": "Constant",
            "fromBaseline": True,
            "loadFactor": 2.0,
            "durationSeconds": 3,
            "producers": 3,
        },
        "workload": WORKLOAD,
        "slo": {"maxLostJobs": 0},
        "cleanup": "Never",
    }
    w.create_scaletest("baseline", spec)
    final = w.wait_phase("baseline", {"Succeeded", "Failed"}, 120)
    assert final["phase"] == "Succeeded", final
    baseline = final["baseline"]
    assert baseline["jobs"] == 15 and baseline["throughputPerSecond"] > 0
    assert baseline["stages"]["parsing"]["serviceP50Seconds"] > 0
    # The original plan's figure: finished jobs all sit at the last stage.
    assert set(
        s for s, v in baseline["stages"].items() if "avgUpdatedMinusCreatedSeconds" in v
    ) == {"embedded"}
    ((throughput, requested),) = w.sql(
        "SELECT baseline_throughput, load_requested FROM backlog_operator.scaletest_runs"
        " WHERE run_id = %s",
        final["runId"],
    )
    assert throughput == baseline["throughputPerSecond"]
    assert requested == int(3 * 2.0 * throughput + 1e-9)
    assert final["results"]["jobs"] == requested == final["progress"]["jobsRequested"]
    parts = w.sql(
        "SELECT part, count(*) FROM backlog_operator.scaletest_stage_stats"
        " WHERE run_id = %s AND completions > 0 GROUP BY part ORDER BY part",
        final["runId"],
    )
    assert parts == [("baseline", 11), ("load", 11)]
    reasons = w.event_reasons("baseline")
    assert {"BaselineStarted", "BaselineMeasured", "LoadFinished"} <= set(reasons), reasons


def test_simulated_mode_runs_in_virtual_time_with_the_scalers_specs(world: World) -> None:
    w = world
    w.pools()
    spec = spike_spec(mode="Simulated", slo={"p95EndToEndSeconds": 600, "maxLostJobs": 0})
    w.create_scaletest("sim", spec)
    final = w.wait_phase("sim", {"Failed", "Succeeded"}, 60)
    assert final["phase"] == "Succeeded" and final["verdict"] == "Passed", final
    results = final["results"]
    assert results["jobs"] == 3 * 10 + 25 * 4  # the Spike profile's arrivals
    assert set(results["maxReplicas"]) == {f"{p}-workers" for p in POOLS}
    assert results["latency"]["endToEnd"]["p95"] > 0
    reasons = w.event_reasons("sim")
    assert "Simulating" in reasons and "SLOsMet" in reasons
    # Nothing touched the pipeline; the results are recorded like a live run's.
    assert w.sql("SELECT count(*) FROM upload_pipeline.upload_jobs")[0][0] == 0
    ((stored,),) = w.sql(
        "SELECT results FROM backlog_operator.scaletest_runs WHERE run_id = %s", final["runId"]
    )
    assert stored["jobs"] == results["jobs"] and stored["verdict"] == "Passed"


def test_deleting_a_running_scaletest_stops_producers_and_keeps_results(world: World) -> None:
    w = world
    spec = {
        "database": {"dsnSecretRef": {"name": "db"}},
        "load": {"profile": "Constant", "ratePerSecond": 20, "durationSeconds": 60, "producers": 4},
        "workload": WORKLOAD,
        "cleanup": "Always",
    }
    w.create_scaletest("doomed", spec)

    def loading() -> dict[str, Any] | None:
        current = w.status("doomed")
        created = (current.get("progress") or {}).get("jobsCreated", 0)
        return current if current.get("phase") == "Loading" and created > 10 else None

    before = wait_until(loading, 60, "Loading with jobs created", 0.3)
    w.custom.delete_namespaced_custom_object(GROUP, VERSION, w.namespace, "scaletests", "doomed")

    def gone() -> bool:
        try:
            w.scaletest("doomed")
        except ApiException as error:
            return error.status == 404
        return False

    wait_until(gone, 60, "ScaleTest deleted (finalizer released)")
    run_id = before["runId"]
    # cleanup Always: the synthetic jobs went; nothing is produced any more.
    assert (
        w.sql("SELECT count(*) FROM upload_pipeline.upload_jobs WHERE run_id = %s", run_id)[0][0]
        == 0
    )
    time.sleep(1.5)
    assert (
        w.sql("SELECT count(*) FROM upload_pipeline.upload_jobs WHERE run_id = %s", run_id)[0][0]
        == 0
    )
    # The results rows stay.
    assert (
        w.sql("SELECT count(*) FROM backlog_operator.scaletest_runs WHERE run_id = %s", run_id)[0][
            0
        ]
        == 1
    )
