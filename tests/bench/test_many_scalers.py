"""Benchmark: 200 BacklogScalers over one database, served by one operator process.

200 worker Deployments (zero replicas) and 200 BacklogScalers on the same DSN, each
watching one of the 11 stages with a 1 s poll; 50 ready jobs per stage, activation
set above them so nothing scales (the full read -> decide -> report path still runs
every tick). After a warm-up, over a steady window, the bench reads:
- `queries_per_tick`: grouped backlog statements the database executed (pg_stat_statements
  calls delta when available, else the operator's own query counter) per hub tick
  (backlog_operator_hub_ticks_total delta);
- `tick_s`: one full evaluation of all scalers = the largest mean reconcile lag (from
  the reading's query start to the end of that scaler's reconcile) over the 200;
- `operator_rss_mb`: VmRSS of the operator process.
Writes bench/results/many_scalers.json. Goals: 1 query per database per tick, tick < 1 s,
RSS < 150 MB. A figure, not an assertion beyond "every scaler reported Ready".
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client

from backlog_operator import pipeline
from tests.fixtures.cluster import KubeCluster
from tests.integration import _scaler_env as env

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "many_scalers.json"
SCALERS = int(os.environ.get("BENCH_SCALERS", "200"))
STEADY_S = float(os.environ.get("BENCH_STEADY_S", "20"))
_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} ([0-9.eE+-]+)$")


def _scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def _per_scaler(samples: list[tuple[str, dict[str, str], float]], name: str) -> dict[str, float]:
    return {labels["scaler"]: value for metric, labels, value in samples if metric == name}


def _total(samples: list[tuple[str, dict[str, str], float]], name: str) -> float:
    return sum(value for metric, _labels, value in samples if metric == name)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _statement_calls(dsn: str) -> int | None:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            row = conn.execute(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
                " WHERE query LIKE %s AND dbid = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())",
                ("%WITH wanted AS%",),
            ).fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


@pytest.fixture
def many_env(
    kube_cluster: KubeCluster,
    kube_api: client.ApiClient,
    namespace: str,
    crds_installed: list[str],
    migrated_dsn: str,
    tmp_path: Path,
) -> Iterator[env.Env]:
    env.create_dsn_secret(kube_api, namespace, migrated_dsn)
    port = env.free_port()
    operator = env.OperatorProcess(
        kube_cluster.kubeconfig, tmp_path / "operator.log", (namespace,), metrics_port=port
    ).start()
    try:
        yield env.Env(kube_api, namespace, migrated_dsn, operator)
    finally:
        custom = client.CustomObjectsApi(kube_api)
        for item in custom.list_namespaced_custom_object(
            env.GROUP, env.VERSION, namespace, env.PLURAL
        )["items"]:
            custom.delete_namespaced_custom_object(
                env.GROUP, env.VERSION, namespace, env.PLURAL, item["metadata"]["name"]
            )
        env.wait_for(
            lambda: (
                not custom.list_namespaced_custom_object(
                    env.GROUP, env.VERSION, namespace, env.PLURAL
                )["items"]
            ),
            120,
            "scalers deleted",
        )
        operator.stop()
        print("---- operator log (tail) ----\n" + operator.log()[-3000:])


def test_two_hundred_scalers_one_database(many_env: env.Env) -> None:
    e = many_env
    stages = [s for s in pipeline.STAGES if s != pipeline.STAGES[-1]]
    for stage in stages:
        env.insert_jobs(e.dsn, stage, 50)
    calls_before_any = _statement_calls(e.dsn)
    custom = client.CustomObjectsApi(e.api)
    for i in range(SCALERS):
        name = f"w{i:03d}"
        env.create_worker_deployment(e.api, e.namespace, name, replicas=0)
        body = env.scaler_body(
            f"s{i:03d}",
            name,
            [stages[i % len(stages)]],
            policy={
                "type": "BacklogPerReplica",
                "backlogPerReplica": 10,
                "activationBacklog": 1000000,
            },
        )
        custom.create_namespaced_custom_object(
            env.GROUP, env.VERSION, e.namespace, env.PLURAL, body
        )

    def all_ready() -> bool:
        e._alive()
        items = custom.list_namespaced_custom_object(
            env.GROUP, env.VERSION, e.namespace, env.PLURAL
        )["items"]
        return len(items) == SCALERS and all(
            env.condition(item, "Ready").get("status") == "True" for item in items
        )

    started = time.monotonic()
    env.wait_for(all_ready, 300, f"{SCALERS} scalers Ready", poll=2)
    all_ready_s = time.monotonic() - started
    time.sleep(5)  # warm-up: let start-up patches settle

    port = e.operator.metrics_port
    before = _scrape(port)
    calls_before = _statement_calls(e.dsn)
    time.sleep(STEADY_S)
    after = _scrape(port)
    calls_after = _statement_calls(e.dsn)
    rss = _rss_mb(e.operator.proc.pid) if e.operator.proc else float("nan")

    lag_sum = "backlog_operator_reconcile_lag_seconds_sum"
    lag_count = "backlog_operator_reconcile_lag_seconds_count"
    sums0, sums1 = _per_scaler(before, lag_sum), _per_scaler(after, lag_sum)
    counts0, counts1 = _per_scaler(before, lag_count), _per_scaler(after, lag_count)
    means = {
        s: (sums1[s] - sums0.get(s, 0.0)) / (counts1[s] - counts0.get(s, 0.0))
        for s in counts1
        if counts1[s] - counts0.get(s, 0.0) > 0
    }
    ticks = sorted(counts1[s] - counts0.get(s, 0.0) for s in counts1)
    ticks_median = ticks[len(ticks) // 2] if ticks else 0.0
    queries_metric = _total(after, "backlog_operator_source_query_seconds_count") - _total(
        before, "backlog_operator_source_query_seconds_count"
    )
    statements = (
        calls_after - calls_before if calls_after is not None and calls_before is not None else None
    )
    hub_ticks = _total(after, "backlog_operator_hub_ticks_total") - _total(
        before, "backlog_operator_hub_ticks_total"
    )
    counted = statements if statements is not None else queries_metric
    report: dict[str, Any] = {
        "benchmark": "many_scalers",
        "scalers": SCALERS,
        "databases": 1,
        "poll_interval_s": 1,
        "steady_window_s": STEADY_S,
        "hub_ticks_in_window": hub_ticks,
        "readings_per_scaler_in_window": ticks_median,
        "queries_per_tick": round(counted / hub_ticks, 3) if hub_ticks else None,
        "queries_per_tick_source": "pg_stat_statements calls / hub ticks"
        if statements is not None
        else "operator query counter / hub ticks",
        "operator_counted_queries_per_tick": round(queries_metric / hub_ticks, 3)
        if hub_ticks
        else None,
        "tick_s": round(max(means.values()), 4) if means else None,
        "tick_median_scaler_lag_s": round(sorted(means.values())[len(means) // 2], 4)
        if means
        else None,
        "operator_rss_mb": round(rss, 1),
        "all_ready_after_create_s": round(all_ready_s, 1),
        "statements_before_scalers": calls_before_any,
        "goal": "queries_per_tick == 1, tick_s < 1, operator_rss_mb < 150",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    assert means, "no reconcile observed in the steady window"
