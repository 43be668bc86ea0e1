"""Command line for the local cluster and database: `python -m devcluster COMMAND`.

Called by `make cluster-up|cluster-down|db-up|db-down`. State lives in
.local/cluster (the cluster) and .local/ (kubeconfig, dsn), next to the repo.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from devcluster.cluster import REPO_ROOT, ClusterError, LocalCluster

LOCAL = REPO_ROOT / ".local"
CLUSTER_DIR = LOCAL / "cluster"
KUBECONFIG = LOCAL / "kubeconfig"


def _up(cluster: LocalCluster) -> int:
    began = time.monotonic()
    try:
        result = cluster.start()
    except ClusterError as exc:
        print(f"cluster-up failed: {exc}", file=sys.stderr)
        return 1
    shutil.copyfile(result.kubeconfig, KUBECONFIG)
    KUBECONFIG.chmod(0o600)
    verb = "reused" if result.reused else "started"
    print(
        f"# cluster {verb} in {time.monotonic() - began:.1f}s; logs in {cluster.logs}",
        file=sys.stderr,
    )
    print(f"export KUBECONFIG={KUBECONFIG}")
    return 0


def _down(cluster: LocalCluster, purge: bool) -> int:
    stopped = cluster.stop()
    print("cluster stopped" if stopped else "no cluster recorded; nothing to stop", file=sys.stderr)
    if purge:
        shutil.rmtree(CLUSTER_DIR, ignore_errors=True)
        KUBECONFIG.unlink(missing_ok=True)
        print(f"removed {CLUSTER_DIR}", file=sys.stderr)
    return 0


def _status(cluster: LocalCluster) -> int:
    state = cluster.load_state()
    if state is None or not state.procs:
        print("not running")
        return 1
    running = cluster.running()
    print(f"{'running' if running else 'DEGRADED (some processes died)'} at {state.server}")
    from devcluster import procs

    for rec in state.procs:
        alive = "alive" if procs.is_running(rec) else "dead"
        print(f"  {rec.name:<24} pid {rec.pid:<8} {alive}")
    return 0 if running else 1


def _db(command: str) -> int:
    from devcluster import postgres

    if command == "db-up":
        dsn = postgres.db_up(LOCAL)
        print(dsn)
        print(f"# DSN written to {LOCAL / 'dsn'}", file=sys.stderr)
    else:
        postgres.db_down(LOCAL)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "db-up", "db-down"])
    parser.add_argument("--purge", action="store_true", help="down: also delete the state dir")
    parser.add_argument("--bin-dir", type=Path, help="control-plane binaries (.local/bin)")
    args = parser.parse_args(argv)
    if args.command.startswith("db-"):
        return _db(args.command)
    cluster = LocalCluster(CLUSTER_DIR, args.bin_dir)
    if args.command == "up":
        return _up(cluster)
    if args.command == "down":
        return _down(cluster, args.purge)
    return _status(cluster)


if __name__ == "__main__":
    raise SystemExit(main())
