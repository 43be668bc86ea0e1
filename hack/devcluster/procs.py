"""Start, recognise and stop local processes safely.

Used by `devcluster.cluster` (etcd, kube-apiserver, kube-controller-manager,
the node agent) and by `devcluster.node` (pod processes). A process is recorded
as pid + kernel start time + argv, and is only signalled while all three still
match, so a recycled pid is never killed by mistake.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcRecord:
    """A process we started: enough to find it again after our own restart."""

    name: str
    pid: int
    start_ticks: int
    argv: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcRecord:
        return cls(data["name"], int(data["pid"]), int(data["start_ticks"]), tuple(data["argv"]))


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited already
        return None
    return int(fields[19])


def cmdline(pid: int) -> tuple[str, ...]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def is_running(rec: ProcRecord, *, check_argv: bool = True) -> bool:
    """True while the recorded process (same pid, start time and argv) is alive.

    pid + start time already identify a process; `check_argv=False` is for
    processes that may rewrite their own command line (pod processes).
    """
    if start_ticks(rec.pid) != rec.start_ticks:
        return False
    return not check_argv or cmdline(rec.pid) == rec.argv


def free_port() -> int:
    """A free loopback TCP port (the kernel picks; a tiny race with other users remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends SIGTERM when
    # the parent exits, so a killed pytest run leaves no control plane behind.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> tuple[subprocess.Popen[bytes], ProcRecord]:
    """Start `argv` in its own session (own process group), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        preexec: Callable[[], None] | None = _die_with_parent if die_with_parent else None
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,  # only prctl runs there: no locks taken
        )
    ticks = start_ticks(proc.pid) or 0
    return proc, ProcRecord(name, proc.pid, ticks, _settled_cmdline(proc, tuple(argv)))


def _settled_cmdline(proc: subprocess.Popen[bytes], argv: tuple[str, ...]) -> tuple[str, ...]:
    """argv as the kernel will report it (a script shows as `interpreter script ...`).

    Popen returns while exec may still be setting up the new image (vfork), when
    /proc/PID/cmdline can be empty: wait until two reads agree.
    """
    previous: tuple[str, ...] = ()
    for _ in range(200):
        current = cmdline(proc.pid)
        if current and current == previous:
            return current
        if proc.poll() is not None:
            break
        previous = current
        time.sleep(0.005)
    return previous or argv


def signal_group(rec: ProcRecord, sig: signal.Signals, *, check_argv: bool = True) -> bool:
    """Signal the record's process group if the record still matches; False if gone."""
    if not is_running(rec, check_argv=check_argv):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(rec.pid, sig)
    return True


def stop(
    rec: ProcRecord, grace: float = 10.0, poll: float = 0.1, *, check_argv: bool = True
) -> None:
    """SIGTERM the record's process group, then SIGKILL it after `grace` seconds."""
    if not signal_group(rec, signal.SIGTERM, check_argv=check_argv):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(rec.pid)
        if not is_running(rec, check_argv=False):
            return
        time.sleep(poll)
    signal_group(rec, signal.SIGKILL, check_argv=False)
    for _ in range(50):
        _reap(rec.pid)
        if not is_running(rec, check_argv=False):
            return
        time.sleep(poll)


def _reap(pid: int) -> None:
    # Our own children become zombies until waited for; others raise ChildProcessError.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
