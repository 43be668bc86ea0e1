"""A local Kubernetes control plane made of real processes.

`LocalCluster(state_dir).start()` runs etcd, kube-apiserver,
kube-controller-manager (pinned binaries from .local/bin, built by
hack/build-tools.sh) and the process node agent (`devcluster.node`) on free
loopback ports, waits until each answers its health endpoint, writes an admin
kubeconfig to `state_dir/kubeconfig` and records pids and ports in
`state_dir/state.json`. `stop()` stops exactly the processes recorded there.
Called by `python -m devcluster up|down|status` and the `kube_cluster` pytest
fixture (tests/fixtures/cluster.py).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster import procs
from devcluster.kubeconfig import write_cert_kubeconfig
from devcluster.pki import Pki, ensure_pki

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN_DIR = REPO_ROOT / ".local" / "bin"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
NODE_NAME = "local-0"
# Stop order: the node first (it stops its pods), etcd last.
STOP_ORDER = ("node", "kube-controller-manager", "kube-apiserver", "etcd")


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says what and where the log is."""


@dataclass(frozen=True)
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int


@dataclass(frozen=True)
class ClusterState:
    """What `state.json` holds: where the cluster listens and which processes are ours."""

    ports: Ports
    procs: tuple[procs.ProcRecord, ...] = field(default=())

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    def to_json(self) -> dict[str, Any]:
        return {
            "ports": self.ports.__dict__,
            "server": self.server,
            "procs": [p.to_json() for p in self.procs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterState:
        recs = tuple(procs.ProcRecord.from_json(p) for p in data.get("procs", []))
        return cls(Ports(**data["ports"]), recs)


@dataclass(frozen=True)
class StartResult:
    kubeconfig: Path
    server: str
    reused: bool
    seconds: float


class LocalCluster:
    """One local cluster whose files all live under `state_dir`."""

    def __init__(
        self,
        state_dir: Path,
        bin_dir: Path | None = None,
        *,
        die_with_parent: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.bin_dir = bin_dir or Path(os.environ.get("DEVCLUSTER_BIN_DIR", DEFAULT_BIN_DIR))
        self.die_with_parent = die_with_parent
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def load_state(self) -> ClusterState | None:
        try:
            return ClusterState.from_json(json.loads(self._state_file.read_text()))
        except (OSError, ValueError, KeyError):
            return None

    def _save(self, state: ClusterState) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=2))
        tmp.replace(self._state_file)

    def running(self) -> ClusterState | None:
        """The recorded cluster if every one of its processes is still alive."""
        state = self.load_state()
        if state is None or len(state.procs) != len(STOP_ORDER):
            return None
        return state if all(procs.is_running(p) for p in state.procs) else None

    def missing_binaries(self) -> list[Path]:
        return [self.bin_dir / b for b in BINARIES if not os.access(self.bin_dir / b, os.X_OK)]

    def start(self) -> StartResult:
        """Start the cluster, or reuse the one already running from this state dir."""
        began = time.monotonic()
        state = self.running()
        if state is not None:
            self._log(f"cluster already running at {state.server} (state in {self.state_dir})")
            return StartResult(self.kubeconfig, state.server, True, time.monotonic() - began)
        previous = self.load_state()
        if previous is not None and previous.procs:
            self._log("previous cluster is partly dead: stopping its leftovers, starting fresh")
            self.stop()
        missing = self.missing_binaries()
        if missing:
            names = ", ".join(str(m) for m in missing)
            raise ClusterError(f"missing control-plane binaries: {names}; run `make tools`")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            state = self._start_all()
        except BaseException:
            self.stop()
            raise
        took = time.monotonic() - began
        self._log(f"cluster ready at {state.server} in {took:.1f}s")
        return StartResult(self.kubeconfig, state.server, False, took)

    def _ports(self) -> Ports:
        # Keep the previous ports when they are free, so old kubeconfigs stay valid.
        old = self.load_state()
        chosen: list[int] = []
        for prev in old.ports.__dict__.values() if old else [0, 0, 0, 0]:
            port = prev if prev and _port_free(prev) and prev not in chosen else 0
            while not port or port in chosen:
                port = procs.free_port()
            chosen.append(port)
        return Ports(*chosen)

    def _start_all(self) -> ClusterState:
        pki = ensure_pki(self.state_dir / "pki")
        ports = self._ports()
        state = ClusterState(ports)
        self._save(state)
        server = state.server
        kubeconfigs = {
            name: write_cert_kubeconfig(
                self.state_dir / f"{name}.kubeconfig",
                server,
                pki.ca_cert,
                pki.client_cert(name),
                pki.client_key(name),
                name,
            )
            for name in ("admin", "controller-manager", "node")
        }

        def launch(name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Path:
            nonlocal state
            log = self.logs / f"{name}.log"
            _, rec = procs.spawn(name, argv, log, env=env, die_with_parent=self.die_with_parent)
            state = ClusterState(ports, (*state.procs, rec))
            self._save(state)
            return log

        log = launch("etcd", self._etcd_argv(ports))
        etcd_health = f"http://127.0.0.1:{ports.etcd}/health"
        self._wait("etcd", log, lambda: _field(_get(etcd_health), "health") == "true", 30)
        log = launch("kube-apiserver", self._apiserver_argv(ports, pki))
        # The node agent's Python start-up overlaps the API server's; it retries until ready.
        node = launch("node", self._node_argv(kubeconfigs["node"]), self._node_env())
        admin_ctx = _client_ssl(pki, "admin")
        self._wait("kube-apiserver", log, lambda: _get(f"{server}/readyz", admin_ctx), 120)
        self.kubeconfig.write_bytes(kubeconfigs["admin"].read_bytes())
        self.kubeconfig.chmod(0o600)

        kcm = launch("kube-controller-manager", self._kcm_argv(ports, pki, kubeconfigs))
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        kcm_health = f"https://127.0.0.1:{ports.controller_manager}/healthz"
        self._wait("kube-controller-manager", kcm, lambda: _get(kcm_health, insecure), 60)
        node_url = f"{server}/api/v1/nodes/{NODE_NAME}"
        self._wait("node", node, lambda: _node_ready(_get(node_url, admin_ctx)), 60)
        # Pods are refused until the controllers made the namespace's `default`
        # ServiceAccount: wait for it so "ready" means `kubectl run` works.
        sa_url = f"{server}/api/v1/namespaces/default/serviceaccounts/default"
        sa_ready = "ServiceAccount default/default"
        self._wait("kube-controller-manager", kcm, lambda: _get(sa_url, admin_ctx), 60, sa_ready)
        return state

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _etcd_argv(self, p: Ports) -> list[str]:
        client, peer = f"http://127.0.0.1:{p.etcd}", f"http://127.0.0.1:{p.etcd_peer}"
        return [
            self._bin("etcd"),
            "--name=devcluster",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=devcluster={peer}",
            "--unsafe-no-fsync=true",  # throw-away data: fsync only costs time on a shared disk
            "--log-level=warn",
        ]

    def _apiserver_argv(self, p: Ports, pki: Pki) -> list[str]:
        return [
            self._bin("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{p.etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The endpoint reconciler refuses loopback addresses; pods reach the API
            # through their KUBECONFIG, not the `kubernetes` Service, so none is needed.
            "--endpoint-reconciler-type=none",
            f"--secure-port={p.apiserver}",
            f"--cert-dir={self.state_dir / 'apiserver'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]

    def _kcm_argv(self, p: Ports, pki: Pki, kubeconfigs: dict[str, Path]) -> list[str]:
        kc = kubeconfigs["controller-manager"]
        return [
            self._bin("kube-controller-manager"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p.controller_manager}",
            f"--cert-dir={self.state_dir / 'controller-manager'}",
            "--leader-elect=false",
            "--controllers=*",
            # Each controller acts as its own service account: the bootstrap RBAC
            # roles assume this, as kubeadm does.
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--v=1",
        ]

    def _node_argv(self, kubeconfig: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "devcluster.node",
            f"--kubeconfig={kubeconfig}",
            f"--state-dir={self.state_dir / 'node'}",
            f"--node-name={NODE_NAME}",
        ]

    def _node_env(self) -> dict[str, str]:
        env = dict(os.environ)
        hack = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (hack, env.get("PYTHONPATH")) if p)
        return env

    def _wait(
        self, name: str, log: Path, probe: Callable[[], object], timeout: float, what: str = ""
    ) -> None:
        """Poll `probe` until it holds; fail early if the process died."""
        began = time.monotonic()
        deadline = began + timeout
        state = self.load_state()
        rec = next(p for p in (state.procs if state else ()) if p.name == name)
        while time.monotonic() < deadline:
            if not procs.is_running(rec):
                raise ClusterError(f"{name} exited during start-up; log {log}:\n{_tail(log)}")
            try:
                if probe():
                    done = what or f"{name} healthy"
                    self._log(f"  {done} after {time.monotonic() - began:.1f}s")
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        waited = what or f"{name} healthy"
        raise ClusterError(f"no {waited} after {timeout:.0f}s; log {log}:\n{_tail(log)}")

    def stop(self) -> bool:
        """Stop every process recorded in state.json; True if there was anything to stop."""
        state = self.load_state()
        if state is None:
            return False
        by_name = {p.name: p for p in state.procs}
        for name in STOP_ORDER:
            if name in by_name:
                # The node needs time to stop its pods (each gets its grace period, capped).
                procs.stop(by_name[name], grace=40.0 if name == "node" else 15.0)
        # Keep the ports (not the pids): the next start reuses them when free.
        self._save(ClusterState(state.ports))
        return bool(state.procs)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _client_ssl(pki: Pki, name: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.client_cert(name)), str(pki.client_key(name)))
    return ctx


def _get(url: str, ctx: ssl.SSLContext | None = None) -> bool | dict[str, Any]:
    """True/parsed JSON for a 200 answer, False otherwise."""
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            body = resp.read()
    except urllib.error.HTTPError:
        return False
    try:
        parsed = json.loads(body)
    except ValueError:
        return True
    return parsed if isinstance(parsed, dict) else True


def _field(answer: bool | dict[str, Any], key: str) -> Any:
    return answer.get(key) if isinstance(answer, dict) else None


def _node_ready(node: bool | dict[str, Any]) -> bool:
    if not isinstance(node, dict):
        return False
    conds = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def kubectl(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the pinned kubectl against `cluster` (a convenience for scripts and tests)."""
    argv = [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
