"""One pod's local process and the pod status that describes it.

Used by `devcluster.node`: a `PodProcess` owns the process of one pod (start,
exit, restart backoff, SIGTERM/SIGKILL on deletion), and the `*_status`
functions build the pods/status patches the node sends for each transition.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster import procs
from devcluster.podenv import POD_IP, LaunchSpec

MAX_BACKOFF = 20.0  # kubelet caps at 300 s; a dev cluster wants fast feedback


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Exit:
    code: int
    started_at: str
    finished_at: str

    @property
    def reason(self) -> str:
        return "Completed" if self.code == 0 else "Error"


@dataclass
class PodProcess:
    """Mutable runtime state of one pod (keyed by uid in the node)."""

    uid: str
    namespace: str
    name: str
    log: Path
    restart_count: int = 0
    popen: subprocess.Popen[bytes] | None = None
    record: procs.ProcRecord | None = None
    started_at: str = ""
    last_exit: Exit | None = None
    exit_handled: bool = True
    next_start: float = 0.0  # monotonic time before which we do not (re)start
    term_deadline: float | None = None  # set once SIGTERM was sent
    killed: bool = False
    done: bool = False  # Succeeded/Failed reported: never run again
    waiting_reason: str = ""
    grace: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, spec: LaunchSpec, cwd: Path) -> None:
        with self.log.open("a") as out:
            out.write(f"--- {now_iso()} start #{self.restart_count}: {list(spec.argv)}\n")
        try:
            self.popen, self.record = procs.spawn(
                f"{self.namespace}/{self.name}", spec.argv, self.log, env=spec.env, cwd=cwd
            )
        except OSError as exc:  # command not found, not executable...
            self.popen, self.record = None, None
            self.last_exit = Exit(
                127 if isinstance(exc, FileNotFoundError) else 126, now_iso(), now_iso()
            )
            self.exit_handled = False
            with self.log.open("a") as out:
                out.write(f"--- cannot start: {exc}\n")
            return
        self.started_at = now_iso()
        self.exit_handled = True
        self.waiting_reason = ""

    def poll_exit(self) -> Exit | None:
        """The exit not yet reported, if the process has ended since the last call."""
        if self.popen is not None and self.popen.poll() is not None:
            code = self.popen.returncode
            # A signal death is -N from Popen; containers report 128+N.
            code = 128 - code if code < 0 else code
            self.last_exit = Exit(code, self.started_at, now_iso())
            self.exit_handled = False
            self.popen = None
            with self.log.open("a") as out:
                out.write(f"--- {now_iso()} exited with code {code}\n")
        if not self.exit_handled:
            return self.last_exit
        return None

    def terminate(self, grace: float) -> None:
        """SIGTERM the process group now; `overdue()` tells when to SIGKILL."""
        if self.term_deadline is not None:
            return
        self.term_deadline = time.monotonic() + max(grace, 0.0)
        self._signal(signal.SIGTERM)

    def overdue(self) -> bool:
        return self.term_deadline is not None and time.monotonic() >= self.term_deadline

    def kill(self) -> None:
        if self.popen is not None and not self.killed:
            self.killed = True
            self._signal(signal.SIGKILL)
            self.popen.wait(timeout=10)
            with self.log.open("a") as out:
                out.write(f"--- {now_iso()} killed after the grace period\n")

    def _signal(self, sig: signal.Signals) -> None:
        # Our unreaped child cannot have been replaced by another process, so the
        # pid is safe to signal even if the process rewrote its command line.
        if self.alive and self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def backoff(self) -> float:
        return min(2.0 ** max(self.restart_count - 1, 0), MAX_BACKOFF)


def _conditions(ready: bool, now: str) -> list[dict[str, Any]]:
    flag = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
        {"type": "Ready", "status": flag, "lastTransitionTime": now},
    ]


def _container(
    pod: dict[str, Any], p: PodProcess, state: dict[str, Any], ready: bool
) -> dict[str, Any]:
    c = pod["spec"]["containers"][0]
    status: dict[str, Any] = {
        "name": c["name"],
        "image": c.get("image", ""),
        "imageID": "",
        "containerID": f"devcluster://{p.record.pid if p.record else 0}",
        "ready": ready,
        "started": "running" in state,
        "restartCount": p.restart_count,
        "state": state,
    }
    if p.last_exit is not None and "terminated" not in state:
        status["lastState"] = {"terminated": _terminated(p.last_exit)}
    return status


def _terminated(e: Exit) -> dict[str, Any]:
    return {
        "exitCode": e.code,
        "reason": e.reason,
        "startedAt": e.started_at or None,
        "finishedAt": e.finished_at,
    }


def _base(pod: dict[str, Any], phase: str) -> dict[str, Any]:
    start = (pod.get("status") or {}).get("startTime") or now_iso()
    return {
        "phase": phase,
        "hostIP": POD_IP,
        "hostIPs": [{"ip": POD_IP}],
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "startTime": start,
    }


def running_status(pod: dict[str, Any], p: PodProcess) -> dict[str, Any]:
    now = now_iso()
    state = {"running": {"startedAt": p.started_at}}
    return {
        **_base(pod, "Running"),
        "conditions": _conditions(True, now),
        "containerStatuses": [_container(pod, p, state, True)],
    }


def waiting_status(pod: dict[str, Any], p: PodProcess, reason: str, message: str) -> dict[str, Any]:
    """Not running, will be (re)started: CrashLoopBackOff or CreateContainerConfigError."""
    now = now_iso()
    phase = "Running" if p.restart_count or p.last_exit else "Pending"
    state = {"waiting": {"reason": reason, "message": message[:1000]}}
    return {
        **_base(pod, phase),
        "conditions": _conditions(False, now),
        "containerStatuses": [_container(pod, p, state, False)],
    }


def finished_status(pod: dict[str, Any], p: PodProcess, e: Exit) -> dict[str, Any]:
    now = now_iso()
    state = {"terminated": _terminated(e)}
    return {
        **_base(pod, "Succeeded" if e.code == 0 else "Failed"),
        "conditions": _conditions(False, now),
        "containerStatuses": [_container(pod, p, state, False)],
    }
