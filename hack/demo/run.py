"""The demo's steps, in order, with their timings; teardown unless KEEP=1.

PostgreSQL + migrations, local cluster, CRDs + RBAC, namespace/Secret/peering,
operator, worker pools + BacklogScalers, the ScaleTest with live progress, the
results table, the report under reports/<run>/, a doctor checklist, teardown.
`python -m demo down` removes a demo kept with KEEP=1. Called by
demo/__main__.py (`make demo`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from backlog_operator.db import migrate
from backlog_operator.report import checks, doctor_db, doctor_kube, table
from backlog_operator.report import cli as report_cli
from backlog_operator.report import load as report_load
from demo import deploy, progress
from demo.setup import NAMESPACE, STATE, Infra, kill_kept_operator
from devcluster.cluster import REPO_ROOT

TERMINAL = {"Succeeded", "Failed"}


class Steps:
    """Prints each step and how long it took; keeps the timings for the closing summary."""

    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []
        self.began = time.monotonic()

    @contextlib.contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        print(f"==> {what}", flush=True)
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self.timings.append((f"{what} (failed)", time.monotonic() - start))
            raise
        took = time.monotonic() - start
        self.timings.append((what, took))
        print(f"    done in {took:.1f}s", flush=True)

    def summary(self) -> table.Table:
        rows = tuple((what, f"{took:.1f}") for what, took in self.timings)
        total = time.monotonic() - self.began
        return table.Table(
            f"make demo took {total:.0f}s",
            ("step", "seconds"),
            (*rows, ("total", f"{total:.1f}")),
            numeric=frozenset({1}),
        )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _wait(probe: Any, timeout: float, what: str, check: Any = lambda: None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check()
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")


def results_table(name: str, status: dict[str, Any]) -> table.Table:
    r = status.get("results") or {}
    e2e = (r.get("latency") or {}).get("endToEnd") or {}
    f = table.fmt
    rows = [
        ("verdict", str(status.get("verdict", "-"))),
        ("jobs (load)", str(r.get("jobs", "-"))),
        ("throughput (jobs/s)", f(r.get("throughputPerSecond"))),
        (
            "end-to-end p50 / p95 / p99 (s)",
            " / ".join(f(e2e.get(k)) for k in ("p50", "p95", "p99")),
        ),
        ("queue wait p95 (s)", f(r.get("queueWaitP95Seconds"))),
        ("time to first scale-up (s)", f(r.get("timeToFirstScaleSeconds"))),
        ("drain (s)", f(r.get("drainSeconds"))),
        (
            "bottleneck",
            f"{r.get('bottleneckStage', '-')} (utilization {f(r.get('bottleneckUtilization'))})",
        ),
        (
            "lost / duplicate jobs",
            f"{r.get('lostJobs', '-')} / {r.get('duplicateCompletions', '-')}",
        ),
    ]
    rows += [(f"max replicas {k}", str(v)) for k, v in sorted((r.get("maxReplicas") or {}).items())]
    rows += [
        (
            f"SLO {s['name']}",
            f"{'met' if s.get('met') else 'NOT met'}: "
            f"{f(s.get('observed'))} (target {f(s.get('target'))})",
        )
        for s in r.get("slo") or []
    ]
    return table.Table(f"ScaleTest {NAMESPACE}/{name}: results", ("figure", "value"), tuple(rows))


def run(profile: str, keep: bool, out: Path) -> int:
    interactive = sys.stdout.isatty() and importlib.util.find_spec("rich") is not None
    steps = Steps()
    if (STATE / "cluster").exists() or (STATE / "pg").exists():
        with steps("removing a demo kept from an earlier run"):
            down()
    STATE.mkdir(parents=True, exist_ok=True)
    infra = Infra()
    rc = 1
    name = ""
    try:
        with steps("throw-away PostgreSQL + migrations"):
            print(f"    {infra.start_postgres()}")
        with steps("local cluster: etcd, kube-apiserver, kube-controller-manager, process node"):
            infra.start_cluster()
        with steps("CRDs + RBAC"):
            infra.install_crds_and_rbac()
        with steps(f"namespace {NAMESPACE}, DSN Secret, KopfPeering"):
            deploy.base(infra.api, infra.dsn)
        with steps(f"operator as ServiceAccount backlog-operator (log: {infra.operator_log})"):
            infra.start_operator()
        check = lambda: None if infra.operator_alive() else _operator_died(infra)  # noqa: E731
        with steps("worker pools parse/chunk/embed + BacklogScalers"):
            deploy.pools(infra.api)
            _wait(
                lambda: (
                    all(p.desired is not None for p in _pools(infra)) and len(_pools(infra)) == 3
                ),
                90,
                "the operator to read every BacklogScaler",
                check,
            )
        with steps(f"ScaleTest spike-2x ({profile} profile): baseline, then 2x load + spike"):
            name = deploy.start_scaletest(infra.api, profile)
            final = progress.watch(
                lambda: deploy.snapshot(infra.api, name),
                lambda s: s.phase in TERMINAL,
                interactive,
                timeout=1200,
                check=check,
            )
        table.show(results_table(name, final.status))
        run_id = str(final.status.get("runId"))
        with steps(f"report for run {run_id}"):
            with migrate.connect(infra.dsn) as conn:
                info = report_load.find(conn, run_id)
            scalers = report_cli.scaler_specs(str(infra.kubeconfig), info)
            path = report_cli.write_report(infra.dsn, run_id, out=out, scalers=scalers)
            print(f"    {path}")
        with steps("doctor"):
            found = doctor_db.run(infra.dsn, "upload_pipeline", 30.0)
            found += doctor_kube.run(infra.api, [NAMESPACE], "backlog-operator")
            checks.show(found)
        rc = 0 if final.status.get("verdict") else 1
        if not final.status.get("verdict"):
            print(f"the ScaleTest ended without a verdict: {final.status.get('message')}")
    except (Exception, KeyboardInterrupt) as error:
        print(f"demo failed: {_one_line(error)}", file=sys.stderr)
        _tail(infra.operator_log)
    finally:
        if keep:
            _kept(infra)
        else:
            with steps("teardown"):
                _teardown(infra)
        table.show(steps.summary())
    return rc


def _one_line(error: BaseException) -> str:
    body = getattr(error, "body", None)  # kubernetes ApiException: the Status message says it
    if isinstance(body, str | bytes):
        with contextlib.suppress(ValueError):
            return f"{type(error).__name__} {json.loads(body).get('message', '')}"
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _pools(infra: Infra) -> tuple[deploy.Pool, ...]:
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(infra.api)
    items = custom.list_namespaced_custom_object(
        deploy.GROUP, deploy.VERSION, NAMESPACE, "backlogscalers"
    )["items"]
    return tuple(
        deploy.Pool(
            i["metadata"]["name"], 0, 0, (i.get("status") or {}).get("desiredReplicas"), None
        )
        for i in items
    )


def _operator_died(infra: Infra) -> None:
    raise RuntimeError(
        f"the operator exited (code {infra.operator.returncode if infra.operator else '?'})"
    )


def _tail(path: Path, lines: int = 40) -> None:
    with contextlib.suppress(OSError):
        print(f"--- last lines of {path} ---", file=sys.stderr)
        print("\n".join(path.read_text(errors="replace").splitlines()[-lines:]), file=sys.stderr)


def _teardown(infra: Infra) -> None:
    if infra.api is not None and infra.operator_alive():
        with contextlib.suppress(Exception):
            deploy.delete_all(infra.api)
            _wait(lambda: deploy.remaining(infra.api) == 0, 30, "finalizers released")
    infra.teardown()


def _kept(infra: Infra) -> None:
    print(
        "KEEP=1: everything is still running.\n"
        f"  export KUBECONFIG={infra.kubeconfig}\n"
        f"  export BACKLOG_DSN={infra.dsn}\n"
        f"  operator metrics: http://127.0.0.1:{infra.metrics_port}/metrics\n"
        "  try: backlog-operator stats; backlog-operator doctor -n uploads\n"
        "  tear down: PYTHONPATH=hack .venv/bin/python -m demo down"
    )


def down() -> None:
    """Tear down a demo kept with KEEP=1 (or left behind by a killed run)."""
    kill_kept_operator()
    Infra().teardown()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "run"
    if command == "down":
        down()
        print(f"removed the demo under {STATE}")
        return 0
    if command != "run":
        print("usage: python -m demo [run|down]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    profile = os.environ.get("DEMO_PROFILE", "full")
    if profile not in ("full", "short"):
        print("DEMO_PROFILE is full or short", file=sys.stderr)
        return 2
    out = Path(os.environ.get("DEMO_OUT") or REPO_ROOT / "reports")
    return run(profile, os.environ.get("KEEP") == "1", out)
