"""Benchmark: from a committed INSERT of ready jobs to the /scale patch, LISTEN on and off.

One `backlog-operator run` process, one worker Deployment at zero replicas, one
BacklogScaler (pollIntervalSeconds 5, the default). Each trial commits 5 ready jobs
and records when a watch on the Deployment (started before the INSERT) first shows
spec.replicas > 0; then the jobs are finished and the scaler scales back to zero.
>= 20 trials with `listen: true`, then >= 20 with `listen: false` (polling only),
side by side in one run. Writes bench/results/reaction.json (p50_s, p95_s per mode).
Goal: p95 < 1 s with LISTEN (KEDA's default polling is 30 s plus 15 s of HPA sync).
A figure, not an assertion: the test checks only that every trial scaled.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from tests.integration import _scaler_env as env

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "reaction.json"
TRIALS = int(os.environ.get("BENCH_REACTION_TRIALS", "20"))
POLL_S = 5
WORKER, SCALER, STAGE = env.WORKER, env.SCALER, env.STAGE


class ReplicaWatch:
    """Streams the Deployment's events in a thread; records (monotonic time, replicas)."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._apps = client.AppsV1Api(api)
        self._ns, self._name = namespace, name
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            for event in stream.stream(
                self._apps.list_namespaced_deployment,
                self._ns,
                field_selector=f"metadata.name={self._name}",
                timeout_seconds=5,
            ):
                obj = event["object"]
                self.seen.append((time.monotonic(), int(obj.spec.replicas or 0)))
                if self._stop.is_set():
                    stream.stop()
                    break

    def first_up_after(self, t0: float) -> float | None:
        return next((t for t, n in list(self.seen) if t >= t0 and n > 0), None)

    def stop(self) -> None:
        self._stop.set()


scaler_env = env.scaler_env  # the fixture


def _trials(e: env.Env, seen: ReplicaWatch, count: int, jitter_s: float) -> list[float]:
    """`jitter_s`: a random pause before each INSERT, so it lands at a random phase of
    the poll cycle (otherwise the reset, which follows a poll, locks the phase)."""
    rng = random.Random(7)
    delays = []
    for _ in range(count):
        # Reset through the scaler itself (it caches /scale: an outside reset would
        # be seen only at its next refresh): drain, wait for its scale-in to zero.
        env.finish_all_jobs(e.dsn)
        env.wait_for(lambda: e.replicas() == 0, 60, "scaled in to 0")
        time.sleep(0.5)
        time.sleep(rng.uniform(0, jitter_s))
        env.insert_jobs(e.dsn, STAGE, 5)
        t0 = time.monotonic()  # the INSERT's transaction has committed
        up = env.wait_for(lambda t0=t0: seen.first_up_after(t0), 60, "scale-up", poll=0.02)
        delays.append(up - t0)
    return delays


def _summary(delays: list[float]) -> dict[str, Any]:
    ordered = sorted(delays)
    return {
        "trials": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 3),
        "min_s": round(ordered[0], 3),
        "max_s": round(ordered[-1], 3),
        "samples_s": [round(d, 3) for d in delays],
    }


def test_reaction_listen_on_and_off(scaler_env: env.Env) -> None:
    e = scaler_env
    env.create_worker_deployment(e.api, e.namespace, WORKER, replicas=0)
    fast = [{"type": "Pods", "value": 4, "periodSeconds": 1}]
    body = env.scaler_body(
        SCALER,
        WORKER,
        [STAGE],
        pollIntervalSeconds=POLL_S,
        listen=True,
        policy={"type": "BacklogPerReplica", "backlogPerReplica": 10, "idleCooldownSeconds": 0},
        behavior={
            "scaleUp": {"stabilizationWindowSeconds": 0, "policies": fast},
            "scaleDown": {"stabilizationWindowSeconds": 0, "policies": fast},
        },
    )
    env.create_scaler(e.api, e.namespace, body)
    e.wait_condition("Ready", "True")
    seen = ReplicaWatch(e.api, e.namespace, WORKER)
    try:
        time.sleep(1.0)  # the watch is established
        listen_on = _trials(e, seen, TRIALS, jitter_s=0.5)
        env.patch_scaler(e.api, e.namespace, SCALER, {"spec": {"listen": False}})
        time.sleep(POLL_S + 1)  # the scaler re-subscribes without LISTEN at its next reading
        listen_off = _trials(e, seen, TRIALS, jitter_s=POLL_S)
    finally:
        seen.stop()
    report = {
        "benchmark": "reaction",
        "what": "committed INSERT of 5 ready jobs -> Deployment spec.replicas > 0 seen by a watch",
        "poll_interval_s": POLL_S,
        "listen_on": _summary(listen_on),
        "listen_off": _summary(listen_off),
        "goal": "listen_on.p95_s < 1.0",
        "anchor": "KEDA default polling 30 s + HPA sync 15 s",
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("listen_on", "listen_off")}))
    assert len(listen_on) == TRIALS and len(listen_off) == TRIALS
