"""The doctor's checklist: one frozen `Check` per finding, and how the list is printed.

`Check(name, status, detail, fix)`; `Status.FAIL` makes `doctor` exit non-zero,
`Status.WARN` only with --strict. `render_plain` / `show` print the checklist
(rich colours on a terminal when installed). Built by doctor_db.py and
doctor_kube.py; printed by doctor.py.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from backlog_operator.report import table


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str = ""
    fix: str = ""  # what to do about a WARN or FAIL

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL


def ok(name: str, detail: str = "") -> Check:
    return Check(name, Status.OK, detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.WARN, detail, fix)


def skip(name: str, detail: str) -> Check:
    return Check(name, Status.SKIP, detail)


def exit_code(checks: Sequence[Check], strict: bool = False) -> int:
    bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
    return 1 if any(c.status in bad for c in checks) else 0


def render_plain(checks: Sequence[Check]) -> str:
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        lines.append(f"[{c.status.value:<4}] {c.name:<{width}}  {c.detail}".rstrip())
        if c.fix and c.status in (Status.FAIL, Status.WARN):
            for i, part in enumerate(c.fix.splitlines()):
                lines.append(f"{'':7}{'':<{width}}  {'fix: ' if i == 0 else '     '}{part}")
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    lines.append(f"{len(checks)} checks: {failed} failed, {warned} warnings")
    return "\n".join(lines)


_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}


def show(checks: Sequence[Check], force_plain: bool = False, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    if not table.use_rich(stream, force_plain):
        print(render_plain(checks), file=stream, flush=True)
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=stream)
    for c in checks:
        console.print(
            f"[{_STYLE[c.status]}]{c.status.value:>4}[/] [bold]{escape(c.name)}[/]  "
            f"{escape(c.detail)}"
        )
        if c.fix and c.status in (Status.FAIL, Status.WARN):
            console.print(f"      fix: {escape(c.fix)}", style="cyan")
    console.print(render_plain(checks).splitlines()[-1])
