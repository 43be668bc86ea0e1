"""The process node: a tiny kubelet + scheduler that runs pods as local processes.

`python -m devcluster.node --kubeconfig K --state-dir D` (started by
`devcluster.cluster.LocalCluster`) registers Node `local-0`, keeps it Ready
(Lease in kube-node-lease and a status heartbeat), binds unscheduled pods to
it and runs each bound pod's first container as a local process (podenv.py
builds the command line, podrun.py tracks the process and pod status).
On pod deletion it sends SIGTERM to the process group, SIGKILLs after the
grace period and then finalizes the pod. Decisions: docs/decisions/0002.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from devcluster import procs
from devcluster.heartbeat import Heartbeat
from devcluster.kubeconfig import write_token_kubeconfig
from devcluster.podenv import ContainerConfigError, launch_spec
from devcluster.podrun import PodProcess, finished_status, running_status, waiting_status

log = logging.getLogger("devcluster.node")
DEFAULT_SCHEDULER = "default-scheduler"
SHUTDOWN_GRACE_CAP = 30.0  # seconds the node waits for its pods when it stops itself
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


class NodeAgent:
    def __init__(self, kubeconfig: Path, state_dir: Path, node_name: str = "local-0") -> None:
        self.kubeconfig = kubeconfig
        self.state_dir = state_dir
        self.node_name = node_name
        self.pods_dir = (
            state_dir.parent / "pods" if state_dir.name == "node" else state_dir / "pods"
        )
        self.stop = threading.Event()
        self.cache: dict[str, dict[str, Any]] = {}  # uid -> pod JSON, kept by the watch thread
        self.cache_lock = threading.Lock()
        self.queue: queue.Queue[str] = queue.Queue()
        self.running: dict[str, PodProcess] = {}  # touched by the main loop only
        self.bind_sent: set[str] = set()
        # Typed as Any: we send and read plain JSON dicts (camelCase, as in manifests),
        # which the client accepts although its stubs ask for model objects.
        self.api: Any = client.CoreV1Api(self._client())

    def _client(self) -> client.ApiClient:
        # One ApiClient per thread: its connection pool is not shared across threads.
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    # --- lifecycle -----------------------------------------------------------------
    def run(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self._kill_stale()
        Heartbeat(
            client.CoreV1Api(self._client()),
            client.CoordinationV1Api(self._client()),
            self.node_name,
            self.stop,
        ).start()
        threading.Thread(target=self._watch_loop, name="watch", daemon=True).start()
        while not self.stop.is_set():
            keys = set()
            try:
                keys.add(self.queue.get(timeout=0.3))
                while True:
                    keys.add(self.queue.get_nowait())
            except queue.Empty:
                pass
            # Known processes are checked on every tick (exits, backoffs, grace deadlines).
            for uid in keys | set(self.running):
                try:
                    self.reconcile(uid)
                except Exception:  # one broken pod must not stop the node
                    log.exception("reconcile %s failed", uid)
        self._shutdown()

    def _kill_stale(self) -> None:
        """Processes a previous agent started and never stopped (it was SIGKILLed)."""
        for rec in self._load_records():
            if procs.is_running(rec, check_argv=False):
                log.info("stopping stale process %s (pid %d)", rec.name, rec.pid)
                procs.stop(rec, grace=5.0, check_argv=False)
        self._save_records()

    def _shutdown(self) -> None:
        log.info("stopping: terminating %d pod processes", len(self.running))
        for p in self.running.values():
            p.terminate(min(p.grace, SHUTDOWN_GRACE_CAP))
        while any(p.alive and not p.overdue() for p in self.running.values()):
            time.sleep(0.1)
        for p in self.running.values():
            if p.alive:
                p.kill()
        self.running.clear()
        self._save_records()

    # --- bookkeeping of our processes -------------------------------------------------
    @property
    def _records_file(self) -> Path:
        return self.state_dir / "processes.json"

    def _load_records(self) -> list[procs.ProcRecord]:
        try:
            return [
                procs.ProcRecord.from_json(r) for r in json.loads(self._records_file.read_text())
            ]
        except (OSError, ValueError, KeyError):
            return []

    def _save_records(self) -> None:
        recs = [p.record.to_json() for p in self.running.values() if p.record and p.alive]
        tmp = self._records_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(recs))
        tmp.replace(self._records_file)

    # --- watch: keeps self.cache current and queues changed pods ----------------------
    def _watch_loop(self) -> None:
        from kubernetes import watch

        api: Any = client.CoreV1Api(self._client())
        while not self.stop.is_set():
            try:
                resp = api.list_pod_for_all_namespaces(_preload_content=False)
                listed = json.loads(resp.data)
                fresh = {p["metadata"]["uid"]: p for p in listed["items"]}
                with self.cache_lock:
                    gone = set(self.cache) - set(fresh)
                    self.cache = fresh
                for uid in set(fresh) | gone:
                    self.queue.put(uid)
                rv = listed["metadata"]["resourceVersion"]
                while not self.stop.is_set():
                    w = watch.Watch()
                    for ev in w.stream(
                        api.list_pod_for_all_namespaces,
                        resource_version=rv,
                        timeout_seconds=60,
                        allow_watch_bookmarks=True,
                        _request_timeout=90,  # a silently dead connection must not hang us
                    ):
                        obj = ev["raw_object"]
                        if ev["type"] == "ERROR":
                            raise RuntimeError(f"watch error: {obj.get('message')}")
                        rv = obj["metadata"]["resourceVersion"]
                        if ev["type"] == "BOOKMARK":
                            continue
                        uid = obj["metadata"]["uid"]
                        with self.cache_lock:
                            if ev["type"] == "DELETED":
                                self.cache.pop(uid, None)
                            else:
                                self.cache[uid] = obj
                        self.queue.put(uid)
                        if self.stop.is_set():
                            w.stop()
            except Exception as exc:  # relist after any failure (410 Gone, network)
                if not self.stop.is_set():
                    log.warning("pod watch restarting: %s", exc)
                    time.sleep(0.5)

    # --- reconcile one pod --------------------------------------------------------------
    def reconcile(self, uid: str) -> None:
        with self.cache_lock:
            pod = self.cache.get(uid)
        p = self.running.get(uid)
        if pod is None:  # gone from the API (finalized or force-deleted)
            if p is not None:
                self._terminate(uid, p, p.grace, finalize=None)
            return
        spec, meta = pod["spec"], pod["metadata"]
        if not spec.get("nodeName"):
            if spec.get("schedulerName", DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER:
                self._bind(pod)
            return
        if spec["nodeName"] != self.node_name:
            return
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = spec.get("terminationGracePeriodSeconds", 30)
            self._terminate(uid, p, float(grace), finalize=pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if p is None:
            if phase in ("Succeeded", "Failed"):
                return  # finished before this agent started: never re-run
            p = PodProcess(
                uid,
                meta["namespace"],
                meta["name"],
                self.pods_dir / f"{meta['namespace']}_{meta['name']}.log",
            )
            p.grace = float(spec.get("terminationGracePeriodSeconds", 30))
            p.restart_count = _previous_restarts(pod)
            self.running[uid] = p
            self._start(pod, p)
            return
        if p.done or p.alive:
            return
        exit_ = p.poll_exit()
        if exit_ is not None:
            p.exit_handled = True
            self._save_records()
            policy = spec.get("restartPolicy", "Always")
            if policy == "Always" or (policy == "OnFailure" and exit_.code != 0):
                p.restart_count += 1
                p.next_start = time.monotonic() + p.backoff()
                msg = f"back-off {p.backoff():.0f}s restarting failed container (exit {exit_.code})"
                self._patch_status(pod, waiting_status(pod, p, "CrashLoopBackOff", msg))
            else:
                p.done = True
                self._patch_status(pod, finished_status(pod, p, exit_))
            return
        if time.monotonic() >= p.next_start:
            self._start(pod, p)

    def _start(self, pod: dict[str, Any], p: PodProcess) -> None:
        try:
            spec = launch_spec(pod, self._lookup, self._base_env(pod))
        except ContainerConfigError as exc:
            p.next_start = time.monotonic() + 2.0
            if p.waiting_reason != str(exc):
                p.waiting_reason = str(exc)
                self._patch_status(
                    pod, waiting_status(pod, p, "CreateContainerConfigError", str(exc))
                )
            return
        workdir = self.pods_dir / f"{p.namespace}_{p.name}"
        workdir.mkdir(parents=True, exist_ok=True)
        wanted = pod["spec"]["containers"][0].get("workingDir")
        p.start(spec, Path(wanted) if wanted and Path(wanted).is_dir() else workdir)
        self._save_records()
        if p.popen is not None:  # else: could not exec; the next tick reports the exit
            self._patch_status(pod, running_status(pod, p))
        log.info("started %s/%s: %s", p.namespace, p.name, " ".join(spec.argv))

    def _terminate(
        self, uid: str, p: PodProcess | None, grace: float, finalize: dict[str, Any] | None
    ) -> None:
        if p is not None and p.alive:
            if p.term_deadline is None:
                log.info("SIGTERM %s/%s, grace %.0fs", p.namespace, p.name, grace)
                p.terminate(grace)
            elif p.overdue():
                log.info("SIGKILL %s/%s after the grace period", p.namespace, p.name)
                p.kill()
            if p.alive:
                return
        if p is not None:
            p.poll_exit()
            del self.running[uid]
            self._save_records()
        if finalize is not None:
            meta = finalize["metadata"]
            body = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
            try:
                self.api.delete_namespaced_pod(meta["name"], meta["namespace"], body=body)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise

    def _bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if meta["uid"] in self.bind_sent or meta.get("deletionTimestamp"):
            return
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            # _preload_content=False: the client cannot deserialize the Status it gets back.
            self.api.create_namespaced_pod_binding(
                meta["name"], meta["namespace"], body, _preload_content=False
            )
            self.bind_sent.add(meta["uid"])
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.api.patch_namespaced_pod_status(
                meta["name"], meta["namespace"], {"status": status}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _lookup(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        read = (
            self.api.read_namespaced_secret
            if kind == "secret"
            else self.api.read_namespaced_config_map
        )
        try:
            return dict(json.loads(read(name, ns, _preload_content=False).data))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _base_env(self, pod: dict[str, Any]) -> dict[str, str]:
        """What every pod process inherits: the venv first on PATH, and credentials."""
        path = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "/usr/bin:/bin")])
        env = {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "PYTHONUNBUFFERED": "1"}
        for key in ("LANG", "LC_ALL", "TMPDIR", "TZ"):
            if key in os.environ:
                env[key] = os.environ[key]
        if pod["spec"].get("automountServiceAccountToken", True):
            kubeconfig = self._pod_kubeconfig(pod)
            if kubeconfig is not None:
                env["KUBECONFIG"] = str(kubeconfig)
        return env

    def _pod_kubeconfig(self, pod: dict[str, Any]) -> Path | None:
        """A kubeconfig with a token for the pod's service account, bound to the pod,
        so processes act with the RBAC a real pod would have."""
        meta, sa = pod["metadata"], pod["spec"].get("serviceAccountName", "default")
        body = {
            "spec": {
                "expirationSeconds": 24 * 3600,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            }
        }
        try:
            resp = self.api.create_namespaced_service_account_token(
                sa, meta["namespace"], body, _preload_content=False
            )
        except ApiException as exc:
            raise ContainerConfigError(f"service account {sa}: {exc.reason}") from exc
        token = json.loads(resp.data)["status"]["token"]
        own = yaml.safe_load(self.kubeconfig.read_text())
        cluster = own["clusters"][0]["cluster"]
        path = self.pods_dir / f"{meta['namespace']}_{meta['name']}.kubeconfig"
        user = f"system:serviceaccount:{meta['namespace']}:{sa}"
        ca = cluster["certificate-authority-data"]
        return write_token_kubeconfig(path, cluster["server"], ca, token, user)


def _previous_restarts(pod: dict[str, Any]) -> int:
    """A pod that already ran (under an earlier agent) restarts with restartCount + 1."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if not statuses:
        return 0
    st = statuses[0]
    ran = "running" in (st.get("state") or {}) or "terminated" in (st.get("state") or {})
    return int(st.get("restartCount", 0)) + (1 if ran else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.node", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--node-name", default="local-0")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    agent = NodeAgent(args.kubeconfig, args.state_dir.resolve(), args.node_name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop.set())
    agent.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
