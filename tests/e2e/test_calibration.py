"""Calibration (issue 6): one short live ScaleTest and the simulator on the same load agree.

The live side: a real `backlog-operator run`, real worker pods on the process node and a
real PostgreSQL (the `world` fixture of test_scaletest.py). One stage queues: `parsing`,
served by a pool of concurrency-1 workers (one job per pod, the simulator's replica)
that a BacklogScaler sizes between 0 and 3; every other stage is a no-op served by one
wide worker, so it adds only its claim round trips. The load overloads the pool (8 jobs/s
against 3 x 2 jobs/s), so queueing (seconds) dominates the machine's noise
(milliseconds), and service times are Constant so the comparison is not a coin toss
between two different sets of random draws.

The simulated side: sim.staged on the live run's own per-second arrivals, the same
BacklogScaler spec, and what the run's timeline says about the machine (docs/decisions
0014): the pod start delay (scale-up -> the pod's first claim), the operator's reaction
(first job -> first scale-up, given to the simulator as its wake-up debounce) and the
per-job cycle a worker really pays (0.5 s of work plus its claim round trip).

Compared (sim.calibrate.compare_with_live, 25 %): drain time after the load (same
reference on both sides: the run's load_finished_at), and the live run's own
`status.results.queueWaitP95Seconds` with the simulator's: both are the p95 over every
(job, stage) pair (the simulator counts the ten no-op stages as zero-wait pairs, its
`waitless_stages`; see 0014). The per-job summed p95 is recorded on both sides but not
compared. The figures go to bench/results/calibration.json.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from backlog_operator import pipeline
from backlog_operator.sim import calibrate, staged
from backlog_operator.sim.ours import OursController
from backlog_operator.sim.service import Distribution, ServiceTime
from tests.e2e.test_scaletest import BIN, GROUP, VERSION, World, world  # noqa: F401
from tests.fixtures.cluster import KubeCluster, process_node_only, wait_until

pytestmark = [
    pytest.mark.e2e,
    # Its worker pods run the venv's command at concurrency 1 and it times local pod
    # starts; on kind (images, real pod start-up) it would need its own calibration.
    process_node_only("calibrates against the local pods' measured start-up"),
]

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "calibration.json"
RATE, DURATION, SERVICE_S, MAX_REPLICAS = 8, 40, 0.5, 3
SLOW = ["parsing"]
FAST = [s for s in pipeline.STAGES if s not in SLOW]
SCALER_SPEC: dict[str, Any] = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "parse-worker"},
    "database": {"dsnSecretRef": {"name": "db"}},
    "source": {"stages": SLOW},
    "minReplicas": 0,
    "maxReplicas": MAX_REPLICAS,
    "pollIntervalSeconds": 1,
    # Default behavior (scale-down stabilization 60 s): no scale-in during the ~20 s drain.
    "policy": {"type": "BacklogPerReplica", "backlogPerReplica": 5},
}
WORKLOAD = {
    "serviceTime": {
        "default": {"meanSeconds": 0, "distribution": "Constant"},  # inline no-ops
        "stages": {"parsing": {"meanSeconds": SERVICE_S, "distribution": "Constant"}},
    },
    "failureRate": 0.0,
}


def worker_deployment(
    w: World, name: str, stages: list[str], concurrency: int, replicas: int
) -> None:
    labels = {"app": name}
    command = [
        str(BIN),
        "worker",
        "--stages",
        ",".join(stages),
        "--metrics-port",
        "0",
        "--concurrency",
        str(concurrency),
        # Concurrency 1: claim one job at a time, as a simulated replica serves one.
        "--batch-size",
        str(concurrency),
        "--poll-interval",
        "0.2",
        "--grace-seconds",
        "2",
    ]
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "BACKLOG_DSN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "dsn"}}},
    ]
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": w.namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "backlog-operator",
                            "command": command,
                            "env": env,
                        }
                    ],
                },
            },
        },
    }
    client.AppsV1Api(w.api).create_namespaced_deployment(w.namespace, body)  # type: ignore[arg-type]


class ScaleWatcher(threading.Thread):
    """Records (wall time, spec.replicas) of a Deployment whenever it changes (0.1 s polls)."""

    def __init__(self, w: World, deployment: str) -> None:
        super().__init__(daemon=True)
        self.apps = client.AppsV1Api(w.api)
        self.w, self.deployment = w, deployment
        self.changes: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        last = 0
        while not self.done.is_set():
            try:
                scale = self.apps.read_namespaced_deployment_scale(
                    self.deployment, self.w.namespace
                )
            except Exception:  # a slow API server must not end the record; poll again
                self.done.wait(0.1)
                continue
            replicas = int(scale.spec.replicas or 0) if scale.spec else 0
            if replicas != last:
                self.changes.append((time.time(), replicas))
                last = replicas
            self.done.wait(0.1)


def fast_worker_ready(w: World, cluster: KubeCluster) -> bool:
    pods = client.CoreV1Api(w.api).list_namespaced_pod(
        w.namespace, label_selector="app=fast-worker"
    )
    names = [str(p.metadata.name) for p in pods.items if p.metadata]
    return any("worker ready" in cluster.pod_log(w.namespace, name) for name in names)


def _epoch(value: datetime) -> float:
    return value.astimezone(UTC).timestamp()


def live_timeline(w: World, run_id: str) -> dict[str, Any]:
    """What the database recorded: the load window, arrivals, parse pods' claims, waits."""
    ((started, finished),) = w.sql(
        "SELECT load_started_at, load_finished_at FROM backlog_operator.scaletest_runs"
        " WHERE run_id = %s",
        run_id,
    )
    created = [
        _epoch(c)
        for (c,) in w.sql(
            "SELECT created_at FROM upload_pipeline.upload_jobs"
            " WHERE run_id = %s AND payload->>'part' = 'load' ORDER BY created_at",
            run_id,
        )
    ]
    starts: dict[str, list[float]] = {}
    for worker, at in w.sql(
        "SELECT e.worker, e.created_at FROM upload_pipeline.events e"
        " JOIN upload_pipeline.upload_jobs j USING (job_id)"
        " WHERE j.run_id = %s AND e.stage = 'parsing' AND e.event_type = 'stage_started'",
        run_id,
    ):
        starts.setdefault(worker, []).append(_epoch(at))
    # Recorded, not compared: per job, its queue waits summed over every stage
    # (entry = previous stage_done, or creation; wait = entry -> first stage_started).
    ((summed_p95,),) = w.sql(
        "WITH ev AS (SELECT e.job_id, e.stage, e.event_type, e.created_at"
        "  FROM upload_pipeline.events e JOIN upload_pipeline.upload_jobs j USING (job_id)"
        "  WHERE j.run_id = %s AND j.payload->>'part' = 'load'"
        "    AND e.event_type IN ('stage_started', 'stage_done')),"
        " done AS (SELECT job_id, stage, min(created_at) AS done_at FROM ev"
        "  WHERE event_type = 'stage_done' GROUP BY 1, 2),"
        " entered AS (SELECT d.job_id, d.stage, coalesce(lag(d.done_at) OVER"
        "  (PARTITION BY d.job_id ORDER BY d.done_at), j.created_at) AS entered_at"
        "  FROM done d JOIN upload_pipeline.upload_jobs j USING (job_id)),"
        " started AS (SELECT job_id, stage, min(created_at) AS at FROM ev"
        "  WHERE event_type = 'stage_started' GROUP BY 1, 2),"
        " per_job AS (SELECT en.job_id, sum(greatest(extract(epoch FROM s.at - en.entered_at),"
        "  0)) AS wait FROM entered en JOIN started s USING (job_id, stage) GROUP BY 1)"
        " SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY wait) FROM per_job",
        run_id,
    )
    ((parsing_p95,),) = w.sql(
        "SELECT queue_wait_p95 FROM backlog_operator.scaletest_stage_stats"
        " WHERE run_id = %s AND part = 'load' AND stage = 'parsing'",
        run_id,
    )
    return {
        "load_started": _epoch(started),
        "load_finished": _epoch(finished),
        "created": created,
        "parse_starts": starts,
        "summed_wait_p95": float(summed_p95),
        "parsing_wait_p95": float(parsing_p95),
    }


def simulate(
    arrivals: list[int],
    load_window: float,
    service_s: float,
    startup_s: float,
    debounce_s: float,
) -> dict[str, float]:
    """sim.staged on the live arrivals; drain measured from the live run's load end."""
    controller = OursController.from_spec(
        dict(SCALER_SPEC), name="parse-workers", debounce_s=debounce_s
    )
    model = staged.StageModel(
        "parsing", ServiceTime(service_s, Distribution.CONSTANT), controller, "parse-workers"
    )
    # The ten no-op stages (one wide worker, no queueing) are zero-wait (job, stage) pairs.
    result = staged.simulate_stages(
        arrivals, [model], startup_s=startup_s, waitless_stages=len(FAST)
    )
    status = result.to_status()
    # drain_seconds counts from len(arrivals); the live figure from load_finished_at.
    last_completion = result.drain_seconds + len(arrivals)
    return {
        "drainSeconds": round(last_completion - load_window, 3),
        "queueWaitP95Seconds": status["queueWaitP95Seconds"],
        "jobQueueWaitP95Seconds": round(result.job_queue_wait_p95_seconds, 3),
        "maxReplicas": status["maxReplicas"]["parse-workers"],
        "timeToFirstScaleSeconds": status.get("timeToFirstScaleSeconds", -1.0),
    }


def record(entry: dict[str, Any]) -> None:
    """Append this run to bench/results/calibration.json (the last 10 runs are kept)."""
    runs: list[dict[str, Any]] = []
    if RESULTS.exists():
        runs = list(json.loads(RESULTS.read_text()).get("runs", []))
    runs = [*runs, entry][-10:]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": runs}, indent=1, sort_keys=True) + "\n")


def test_live_scaletest_and_simulator_agree_within_25_percent(
    world: World,  # noqa: F811 (the fixture imported above)
    kube_cluster: KubeCluster,
) -> None:
    w = world
    worker_deployment(w, "fast-worker", FAST, concurrency=16, replicas=1)
    worker_deployment(w, "parse-worker", SLOW, concurrency=1, replicas=0)
    w.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        w.namespace,
        "backlogscalers",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BacklogScaler",
            "metadata": {"name": "parse-workers"},
            "spec": SCALER_SPEC,
        },
    )
    # The no-op stages must be served from the first job on, or they would queue too.
    wait_until(lambda: fast_worker_ready(w, kube_cluster), 120, "fast-worker ready", 0.5)
    watcher = ScaleWatcher(w, "parse-worker")
    watcher.start()
    w.create_scaletest(
        "calibration",
        {
            "database": {"dsnSecretRef": {"name": "db"}},
            "scalers": ["parse-workers"],
            "load": {
                "profile": "Constant",
                "ratePerSecond": RATE,
                "durationSeconds": DURATION,
                "producers": 4,
            },
            "workload": WORKLOAD,
            "slo": {"maxLostJobs": 0},
            "cleanup": "Never",
            "drainTimeoutSeconds": 300,
            "sampleIntervalSeconds": 1,
        },
    )
    try:
        final = w.wait_phase("calibration", {"Succeeded", "Failed"}, 420)
    finally:
        watcher.done.set()
        watcher.join(10)
    assert final["phase"] == "Succeeded", final
    results = final["results"]
    assert results["lostJobs"] == 0 and results["jobs"] == RATE * DURATION
    # The experiment is only meaningful if the pool saturated (queueing dominates).
    assert results["maxReplicas"]["parse-workers"] == MAX_REPLICAS, results["maxReplicas"]

    live = live_timeline(w, final["runId"])
    origin, window = live["load_started"], live["load_finished"] - live["load_started"]
    arrivals = calibrate.per_second_counts(
        [c - origin for c in live["created"]], max(DURATION, int(window + 0.999))
    )
    first_claims = [min(s) for s in live["parse_starts"].values()]
    delays = calibrate.startup_delays(watcher.changes, first_claims)
    assert len(delays) == MAX_REPLICAS, (watcher.changes, first_claims)
    startup = statistics.median(delays)
    reaction = watcher.changes[0][0] - live["created"][0]
    cycle = calibrate.mean_cycle(live["parse_starts"])
    assert cycle is not None and cycle >= SERVICE_S

    calibrated_sim = simulate(arrivals, window, cycle, startup, max(reaction, 0.0))
    nominal_sim = simulate(arrivals, window, SERVICE_S, 5.0, 0.1)  # CRD/engine defaults only
    live_figures = {
        "drainSeconds": results["drainSeconds"],
        "queueWaitP95Seconds": results["queueWaitP95Seconds"],  # the live status figure
    }
    agreements = calibrate.compare_with_live(calibrated_sim, live_figures)
    nominal = calibrate.compare_with_live(nominal_sim, live_figures)
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadAverage1m": round(os.getloadavg()[0], 2),  # how busy the 2 shared cores were
        "command": "E2E_CLUSTER=local .venv/bin/pytest -s tests/e2e/test_calibration.py",
        "load": {"profile": "Constant", "ratePerSecond": RATE, "durationSeconds": DURATION},
        "service": {"parsing": f"{SERVICE_S} s Constant", "other stages": "0 (no-op)"},
        "pool": {"concurrencyPerPod": 1, "minReplicas": 0, "maxReplicas": MAX_REPLICAS},
        "measured": {
            "startupSecondsMedian": round(startup, 3),
            "startupSeconds": [round(d, 3) for d in delays],
            "reactionSeconds": round(reaction, 3),
            "cycleSecondsPerJob": round(cycle, 4),
            "loadWindowSeconds": round(window, 3),
        },
        "live": {
            **live_figures,
            "jobQueueWaitP95Seconds": live["summed_wait_p95"],
            "parsingQueueWaitP95Seconds": live["parsing_wait_p95"],
            "timeToFirstScaleSeconds": results.get("timeToFirstScaleSeconds"),
        },
        "simulated": calibrated_sim,
        "simulatedNominal": nominal_sim,
        "agreement": {
            a.metric: {"relativeError": a.relative_error, "within25pct": a.within}
            for a in agreements
        },
        "agreementNominal": {
            a.metric: {"relativeError": a.relative_error, "within25pct": a.within} for a in nominal
        },
    }
    print("calibration:", json.dumps(entry, indent=1, sort_keys=True))
    record(entry)
    assert calibrate.calibrated(agreements), agreements
    # The comparison has teeth: a pipeline 20 % faster per job is told apart.
    faster = simulate(arrivals, window, 0.8 * cycle, startup, max(reaction, 0.0))
    assert not calibrate.calibrated(calibrate.compare_with_live(faster, live_figures)), faster
