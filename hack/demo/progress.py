"""The demo's live progress: phase, jobs done of total, backlog and replicas per pool.

`watch(poll, until, interactive)` calls `poll()` (returns a deploy.Snapshot)
about once a second until `until(snapshot)` holds. On a terminal it draws a
rich Live panel (a progress bar and a per-pool table); otherwise it stays
quiet apart from one line per phase change, so CI logs stay short. Called by
demo/run.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from demo.deploy import Snapshot

POLL_SECONDS = 1.0


def _line(s: Snapshot, elapsed: float) -> str:
    pools = ", ".join(
        f"{p.scaler} {p.current if p.current is not None else '-'}/"
        f"{p.desired if p.desired is not None else '-'} (backlog {p.ready}+{p.in_flight})"
        for p in s.pools
    )
    return f"[{elapsed:6.1f}s] {s.phase:<9} jobs done {s.done}/{s.total}; replicas {pools}"


def _renderable(s: Snapshot, elapsed: float, bar: Any, task: Any) -> Any:
    from rich.console import Group
    from rich.table import Table

    bar.update(task, completed=s.done, total=max(s.total, 1), description=f"{s.phase:<9}")
    table = Table(title=f"pools after {elapsed:.0f}s", title_justify="left")
    for column in ("pool", "ready", "in flight", "replicas (current/desired)"):
        table.add_column(column, justify="left" if column == "pool" else "right")
    for p in s.pools:
        table.add_row(
            p.scaler,
            str(p.ready),
            str(p.in_flight),
            f"{p.current if p.current is not None else '-'} / "
            f"{p.desired if p.desired is not None else '-'}",
        )
    return Group(bar, table)


def watch(
    poll: Callable[[], Snapshot],
    until: Callable[[Snapshot], bool],
    interactive: bool,
    timeout: float,
    check: Callable[[], None] = lambda: None,
) -> Snapshot:
    """Poll until `until` holds (or raise TimeoutError); `check` may raise to abort."""
    began = time.monotonic()
    deadline = began + timeout
    if not interactive:
        last_phase = ""
        while True:
            check()
            s = poll()
            if s.phase != last_phase:
                print(_line(s, time.monotonic() - began), flush=True)
                last_phase = s.phase
            if until(s):
                return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up after {timeout:.0f}s: {_line(s, timeout)}")
            time.sleep(POLL_SECONDS)
    from rich.live import Live
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("jobs done"),
        TimeElapsedColumn(),
    )
    task = bar.add_task("Pending", total=1)
    with Live(refresh_per_second=4, transient=False) as live:
        while True:
            check()
            s = poll()
            live.update(_renderable(s, time.monotonic() - began, bar, task))
            if until(s):
                return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up after {timeout:.0f}s: {_line(s, timeout)}")
            time.sleep(POLL_SECONDS)
